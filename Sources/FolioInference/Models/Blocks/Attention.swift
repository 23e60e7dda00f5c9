import Foundation
import Dispatch

/// Keys and values of every attention block for the positions seen so far, appended as
/// a sequence grows (prefill, then one token per decoding step).
final class KVCache: SequenceState, @unchecked Sendable {
    // @unchecked: used by one generation at a time; workers only read during attention.
    final class Slot {
        let keyWidth: Int, valueWidth: Int
        var keys: UnsafeMutablePointer<Float>
        var values: UnsafeMutablePointer<Float>
        var capacity: Int

        init(keyWidth: Int, valueWidth: Int) {
            self.keyWidth = keyWidth
            self.valueWidth = valueWidth
            capacity = 64
            keys = .allocate(capacity: capacity * keyWidth)
            values = .allocate(capacity: capacity * valueWidth)
        }

        deinit { keys.deallocate(); values.deallocate() }

        /// Writes `count` positions' keys and values after the first `length`.
        func append(keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count: Int, at length: Int) {
            reserve(length + count, keeping: length)
            (keys + length * keyWidth).update(from: k, count: count * keyWidth)
            (values + length * valueWidth).update(from: v, count: count * valueWidth)
        }

        func reserve(_ n: Int, keeping length: Int) {
            guard n > capacity else { return }
            var c = capacity
            while c < n { c *= 2 }
            let k = UnsafeMutablePointer<Float>.allocate(capacity: c * keyWidth)
            let v = UnsafeMutablePointer<Float>.allocate(capacity: c * valueWidth)
            k.update(from: keys, count: length * keyWidth)
            v.update(from: values, count: length * valueWidth)
            keys.deallocate(); values.deallocate()
            keys = k; values = v; capacity = c
        }
    }

    let slots: [Slot]
    /// Positions already stored in every slot.
    private(set) var length = 0

    init(slots: Int, keyWidth: Int, valueWidth: Int) {
        self.slots = (0..<slots).map { _ in Slot(keyWidth: keyWidth, valueWidth: valueWidth) }
    }

    /// One slot per entry, each of its own key and value widths.
    init(widths: [(key: Int, value: Int)]) {
        slots = widths.map { Slot(keyWidth: $0.key, valueWidth: $0.value) }
    }

    /// Stores `count` new positions' keys and values in slot `i` (rows of keyWidth / valueWidth).
    func append(slot i: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count: Int) {
        slots[i].append(keys: k, values: v, count: count, at: length)
    }

    /// Marks `count` positions as stored, after every slot has been appended to.
    func advance(_ count: Int) { length += count }

    /// Forgets the positions from `n` on (rejected draft tokens).
    func truncate(to n: Int) { length = min(length, max(0, n)) }
}

enum Attention {
    /// Causal scaled dot-product attention of `count` new queries against the slot's keys
    /// and values, which already include the new positions (so the cache holds
    /// `past + count` positions). Query head h reads key/value head h / (heads / kvHeads).
    /// q rows: heads × qkDim; out rows: heads × vDim. With a `window`, position i sees
    /// positions j with i - window < j <= i only (transformers' sliding-window mask); with a
    /// `softcap`, scores s become softcap · tanh(s / softcap) before the mask (Gemma 2).
    static func causal(q: UnsafePointer<Float>, count: Int, past: Int, slot: KVCache.Slot, heads: Int, kvHeads: Int, qkDim: Int, vDim: Int,
                       scale: Float, window: Int? = nil, softcap: Float? = nil, into out: UnsafeMutablePointer<Float>) {
        let total = past + count
        let group = heads / kvHeads
        let shared = SendableAttention(q: q, k: slot.keys, v: slot.values, out: out)
        _ = Math.setUp
        let work: @Sendable (Int) -> Void = { head in
            let kvh = head / group
            var scores = [Float](repeating: 0, count: count * total)
            scores.withUnsafeMutableBufferPointer { sb in
                let s = sb.baseAddress!
                Math.matmulNT(shared.q + head * qkDim, lda: heads * qkDim, shared.k + kvh * qkDim, ldb: kvHeads * qkDim,
                              m: count, n: total, k: qkDim, alpha: scale, into: s, ldc: total)
                if let cap = softcap {
                    let inv = 1 / cap
                    for i in 0..<(count * total) { s[i] = cap * tanhf(s[i] * inv) }
                }
                for i in 0..<count {
                    let visible = past + i + 1
                    let row = s + i * total
                    for j in visible..<total { row[j] = -.infinity }
                    if let window, visible > window {
                        for j in 0..<(visible - window) { row[j] = -.infinity }
                    }
                }
                Math.softmaxRows(s, rows: count, width: total)
                Math.matmulNN(s, lda: total, shared.v + kvh * vDim, ldb: kvHeads * vDim, m: count, n: vDim, k: total,
                              into: shared.out + head * vDim, ldc: heads * vDim)
            }
        }
        if count * total * heads < 1 << 14 {
            for h in 0..<heads { work(h) }
        } else {
            Math.parallelFor(heads) { work($0) }
        }
    }
}

/// Pointers shared with the attention workers, which write disjoint heads.
struct SendableAttention: @unchecked Sendable {
    let q: UnsafePointer<Float>
    let k: UnsafePointer<Float>
    let v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
}
