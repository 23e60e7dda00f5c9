import Folio

/// Hugging Face DeepseekV2ForCausalLM (DeepSeek-V2, V2-Lite, V2.5): DeepSeek-V3's layout
/// (`DeepSeekV3.build`) with interleaved RoPE always (transformers' complex rotation) and a
/// softmax router: the top `num_experts_per_tok` scores, within the `topk_group` groups of
/// best single score when `topk_method` is group_limited_greedy, times
/// `routed_scaling_factor`, never renormalised.
enum DeepSeekV2 {
    static let architecture = Architecture(modelType: "deepseek_v2") { c, w, _ in
        try DeepSeekV3.build(c, w, scoring: .softmax, interleaved: true)
    }
}
