import Folio

/// What building a model may need besides its config and weights.
struct BuildContext: Sendable {
    /// Tensors as llama.cpp's converter wrote them (a model converted from GGUF).
    var ggufLayout = false
    /// longcat_flash_ngram's choice of reference semantics ("checkpoint" or "mlx-lm").
    var semantics = "checkpoint"
    var eosIDs: Set<Int32> = []
}

/// One architecture of `folio run`: how its model is built from config.json and the
/// weights, and which stored tensors it leaves unused on purpose (as mlx-lm's `sanitize`
/// drops them: rotary caches, multi-token-prediction heads). Every other tensor the model
/// does not use, and every config key it does not read, is refused by name.
struct Architecture: Sendable {
    let modelType: String
    let build: @Sendable (ModelConfig, WeightStore, BuildContext) throws -> any CausalLM
    var ignores: @Sendable (String) -> Bool = { $0.hasSuffix("rotary_emb.inv_freq") }
}

/// The architectures `folio run` and `folio embed` know, by config.json's `model_type`.
/// Adding one is one file in Models/ and one line here.
enum Registry {
    static let decoders: [Architecture] = [
        Llama.architecture,
        Mistral.architecture,
        Mixtral.architecture,
        Qwen2.architecture,
        Qwen3.architecture,
        Qwen3MoE.architecture,
        Gemma2.architecture,
        Gemma3.architecture,
        Phi3.architecture,
        OLMo2.architecture,
        GPT2.architecture,
        SmolLM3.architecture,
        DeepSeekV2.architecture,
        DeepSeekV3.architecture,
        LongcatNgram.architecture,
    ]

    static func decoder(_ modelType: String) -> Architecture? { decoders.first { $0.modelType == modelType } }

    static var decoderNames: [String] { decoders.map(\.modelType) }

    /// The encoders `folio embed` knows.
    static let encoders: [EncoderArchitecture] = [
        Bert.architecture,
        RoBERTa.architecture,
        DistilBERT.architecture,
        MPNet.architecture,
        ModernBERT.architecture,
    ]

    static func encoder(_ modelType: String) -> EncoderArchitecture? { encoders.first { $0.modelTypes.contains(modelType) } }

    static var encoderNames: [String] { encoders.flatMap(\.modelTypes) }
}
