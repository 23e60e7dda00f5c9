#!/usr/bin/env python3
"""Expected prompts of the chat templates in Tests/Fixtures/chat-templates/, rendered by
transformers' own renderer (`render_jinja_template`, what `apply_chat_template(tokenize=False)`
calls): every template with and without a system message, with and without
add_generation_prompt, and a multi-turn conversation. A template that raises (a family that
refuses system messages) records its message. Writes Tests/Fixtures/chat-templates/cases.json.

    python3 Tools/reference/make_chat_template_fixtures.py     # transformers 5.25.0, jinja2
"""
import glob
import json
import os

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

DIR = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "chat-templates")
# The special tokens each family's tokenizer_config.json gives the template.
TOKENS = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3.1": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2.5": {"bos_token": None, "eos_token": "<|im_end|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>"},
    "phi3": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "features": {"bos_token": "<s>", "eos_token": "</s>"},
}
SYSTEM = {"role": "system", "content": "You are a careful assistant.\nAnswer briefly."}
CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hi there, what is 2 + 2?"}],
    "system+user": [SYSTEM, {"role": "user", "content": "Hi there, what is 2 + 2?"}],
    "multi-turn": [{"role": "user", "content": "  Write a haiku about ducks.  "},
                   {"role": "assistant", "content": "Ducks drift on the pond\nquiet ripples, \"quack\" — and then\nbread crumbs disappear"},
                   {"role": "user", "content": "Now one about geese, in français ✓."}],
    "system+multi-turn": [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                          {"role": "user", "content": "Tell me a joke."}],
}

# Tool use, for the templates that take tools: a tool definition, a call and its result.
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]
TOOL_CONVERSATION = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123def", "type": "function",
                                                        "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "abc123def", "name": "get_weather", "content": "{\"temperature\": 18}"},
]
TOOL_TEMPLATES = {"qwen2.5", "llama3.1", "mistral"}


def main():
    cases = []
    for path in sorted(glob.glob(os.path.join(DIR, "*.jinja"))):
        name = os.path.basename(path)[:-len(".jinja")]
        template = open(path, encoding="utf-8").read()
        tokens = {k: v for k, v in TOKENS.get(name, TOKENS["features"]).items() if v is not None}
        for label, messages in CONVERSATIONS.items():
            for agp in (False, True):
                case = {"template": name, "conversation": label, "messages": messages, "add_generation_prompt": agp,
                        "variables": tokens}
                try:
                    rendered, _ = render_jinja_template([messages], chat_template=template, add_generation_prompt=agp, **tokens)
                    case["expected"] = rendered[0]
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
        if name in TOOL_TEMPLATES:
            for agp in (False, True):
                case = {"template": name, "conversation": "tools", "messages": TOOL_CONVERSATION, "add_generation_prompt": agp,
                        "variables": dict(tokens, tools=TOOLS)}
                try:
                    rendered, _ = render_jinja_template([TOOL_CONVERSATION], tools=TOOLS, chat_template=template, add_generation_prompt=agp, **tokens)
                    case["expected"] = rendered[0]
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(os.path.join(DIR, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "jinja2": jinja2.__version__, "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
