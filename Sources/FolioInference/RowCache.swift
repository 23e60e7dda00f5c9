/// A bounded cache of dequantized table rows: the N-gram Cache idea of the LongCat-Flash-Lite
/// paper (arXiv 2601.21204), frequent n-grams served from memory that is already float32 and
/// hot. Keys are (table, row); replacement is CLOCK (second chance). An open-addressing
/// index keeps a lookup to a few cache lines. Not thread-safe: one cache per thread.
final class RowCache {
    let width: Int
    let capacity: Int
    private let slotKeys: UnsafeMutablePointer<Int64>
    private let referenced: UnsafeMutablePointer<Bool>
    private let values: UnsafeMutablePointer<Float>
    private let table: UnsafeMutablePointer<Int64>      // key of each index entry, -1 empty
    private let tableSlot: UnsafeMutablePointer<Int32>
    private let mask: Int
    private var used = 0
    private var hand = 0
    private(set) var hits = 0
    private(set) var misses = 0

    init(capacity: Int, width: Int) {
        self.capacity = max(1, capacity)
        self.width = width
        slotKeys = .allocate(capacity: self.capacity)
        slotKeys.initialize(repeating: -1, count: self.capacity)
        referenced = .allocate(capacity: self.capacity)
        referenced.initialize(repeating: false, count: self.capacity)
        values = .allocate(capacity: self.capacity * width)
        var size = 16
        while size < 2 * self.capacity { size <<= 1 }
        table = .allocate(capacity: size)
        table.initialize(repeating: -1, count: size)
        tableSlot = .allocate(capacity: size)
        tableSlot.initialize(repeating: 0, count: size)
        mask = size - 1
    }

    deinit {
        slotKeys.deallocate(); referenced.deallocate(); values.deallocate(); table.deallocate(); tableSlot.deallocate()
    }

    static func key(table: Int, row: Int64) -> Int64 { Int64(table) << 44 | row }

    @inline(__always) private func home(_ key: Int64) -> Int {
        Int(truncatingIfNeeded: UInt64(bitPattern: key) &* 0x9E37_79B9_7F4A_7C15 >> 20) & mask
    }

    /// Adds the cached row of `key` to `out` and returns true, or returns false.
    func addIfPresent(_ key: Int64, into out: UnsafeMutablePointer<Float>) -> Bool {
        var i = home(key)
        while table[i] != -1 {
            if table[i] == key {
                let s = Int(tableSlot[i])
                referenced[s] = true
                let row = values + s * width
                for j in 0..<width { out[j] += row[j] }
                hits += 1
                return true
            }
            i = (i + 1) & mask
        }
        misses += 1
        return false
    }

    /// Stores a row, evicting by CLOCK when full. A key already present is left as it is (a
    /// batch can miss the same row twice before inserting it).
    func insert(_ key: Int64, _ row: UnsafePointer<Float>) {
        var probe = home(key)
        while table[probe] != -1 {
            if table[probe] == key { return }
            probe = (probe + 1) & mask
        }
        let slot: Int
        if used < capacity {
            slot = used
            used += 1
        } else {
            while referenced[hand] { referenced[hand] = false; hand = (hand + 1) % capacity }
            slot = hand
            hand = (hand + 1) % capacity
            remove(slotKeys[slot])
        }
        slotKeys[slot] = key
        referenced[slot] = false
        (values + slot * width).update(from: row, count: width)
        var i = home(key)
        while table[i] != -1 { i = (i + 1) & mask }
        table[i] = key
        tableSlot[i] = Int32(slot)
    }

    /// Removes `key` from the index (backward-shift deletion keeps probe chains whole).
    private func remove(_ key: Int64) {
        var i = home(key)
        while table[i] != key {
            if table[i] == -1 { return }
            i = (i + 1) & mask
        }
        var j = i
        while true {
            j = (j + 1) & mask
            if table[j] == -1 { break }
            let h = home(table[j])
            // Move entry j into the hole at i if its home is not cyclically in (i, j].
            let between = i <= j ? (h > i && h <= j) : (h > i || h <= j)
            if !between {
                table[i] = table[j]
                tableSlot[i] = tableSlot[j]
                i = j
            }
        }
        table[i] = -1
    }
}
