import Foundation

/// A routed mixture of gated experts, with the routers of the families in use:
/// - softmax scores, the top k kept, optionally renormalised over the k (Mixtral always,
///   Qwen3-MoE with `norm_topk_prob`);
/// - softmax scores within the groups of best single score (DeepSeek-V2's
///   group_limited_greedy), times `routed_scaling_factor`;
/// - sigmoid scores with a correction bias used for choosing only, group-limited choice
///   (groups ranked by the sum of their two best corrected scores, `topk_group` of them
///   kept), renormalised, times `routed_scaling_factor` (DeepSeek-V3's `noaux_tc`).
/// Shared experts, when present, see every token.
struct MixtureOfExperts: FeedForward {
    enum Scoring: Sendable { case softmax, sigmoid }
    /// How a group of experts is ranked: by the sum of its two best choice scores (DeepSeek-V3),
    /// by its best one (DeepSeek-V2's group_limited_greedy); `.none`: no groups.
    enum GroupScore: Sendable { case none, sumOfTopTwo, best }
    let router: Linear
    let experts: [GatedMLP]
    let topK: Int
    let scoring: Scoring
    let normalize: Bool
    let scale: Float
    /// Added to the scores for choosing experts only (DeepSeek-V3's e_score_correction_bias).
    let correction: Weight?
    /// Group-limited routing: experts in `groups` equal groups, the best `keptGroups` kept.
    let groups: Int
    let keptGroups: Int
    var grouping = GroupScore.sumOfTopTwo
    let shared: GatedMLP?
    let width: Int

    func apply(_ x: UnsafePointer<Float>, rows n: Int, into out: UnsafeMutablePointer<Float>) {
        let e = experts.count, h = width
        var scores = [Float](repeating: 0, count: n * e)
        router.apply(x, rows: n, into: &scores)
        switch scoring {
        case .softmax: scores.withUnsafeMutableBufferPointer { Math.softmaxRows($0.baseAddress!, rows: n, width: e) }
        case .sigmoid: for i in 0..<scores.count { scores[i] = 1 / (1 + expf(-scores[i])) }
        }
        if let shared { shared.apply(x, rows: n, into: out) } else { out.update(repeating: 0, count: n * h) }
        var assigned = [[(token: Int, weight: Float)]](repeating: [], count: e)
        for t in 0..<n {
            let s = Array(scores[(t * e)..<((t + 1) * e)])
            var choice = s
            if let correction { for i in 0..<e { choice[i] += correction[i] } }
            if groups > 1 {
                let size = e / groups
                let groupScore = (0..<groups).map { g -> Float in
                    let top = choice[(g * size)..<((g + 1) * size)].sorted(by: >)
                    return grouping == .best ? top[0] : top[0] + (top.count > 1 ? top[1] : 0)
                }
                let kept = Set((0..<groups).sorted { groupScore[$0] > groupScore[$1] || (groupScore[$0] == groupScore[$1] && $0 < $1) }.prefix(keptGroups))
                for i in 0..<e where !kept.contains(i / size) { choice[i] = -.infinity }
            }
            let picked = (0..<e).sorted { choice[$0] > choice[$1] || (choice[$0] == choice[$1] && $0 < $1) }.prefix(topK)
            var ws = picked.map { s[$0] }
            if normalize {
                let d = ws.reduce(0, +) + (scoring == .sigmoid ? 1e-20 : 0)
                ws = ws.map { $0 / d }
            }
            for (i, w) in zip(picked, ws) { assigned[i].append((t, w * scale)) }
        }
        for (i, list) in assigned.enumerated() where !list.isEmpty {
            var xe = [Float](repeating: 0, count: list.count * h), ye = xe
            for (r, a) in list.enumerated() { for j in 0..<h { xe[r * h + j] = x[a.token * h + j] } }
            experts[i].apply(xe, rows: list.count, into: &ye)
            for (r, a) in list.enumerated() { for j in 0..<h { out[a.token * h + j] += a.weight * ye[r * h + j] } }
        }
    }
}
