/// A data chunk whose checksum does not match, and what lies in it.
public struct ChunkDamage: Sendable, CustomStringConvertible {
    public let chunk: Int
    /// Byte range within the file.
    public let byteRange: Range<Int>
    /// Tensors (with the damaged pages or rows) and embedded files overlapping the chunk.
    public let culprits: [String]

    public var description: String {
        let what = culprits.isEmpty ? "padding between tensors" : culprits.joined(separator: "; ")
        return "chunk \(chunk) (bytes \(byteRange.lowerBound)..<\(byteRange.upperBound)) is damaged: \(what)"
    }
}

/// The outcome of `FolioFile.verify`.
public struct VerifyReport: Sendable {
    /// Set when the chunk-hash table itself does not match its checksum.
    public var tableDamage: String?
    public var damagedChunks: [ChunkDamage]
    /// Quantized rows whose scale or minimum is NaN or infinite (checksums can be right for
    /// a file written that way).
    public var badScales: [String] = []
    /// Damaged chunk indexes and chunks of compressed tensors (each naming tensor and chunk).
    public var compressedDamage: [String] = []
    /// Set when bytes of a remote file could not be fetched (verification stopped there).
    public var unreadable: String?
    public var isIntact: Bool { tableDamage == nil && damagedChunks.isEmpty && badScales.isEmpty && compressedDamage.isEmpty && unreadable == nil }
    /// One line per problem, for the user.
    public var problems: [String] {
        (tableDamage.map { [$0] } ?? []) + damagedChunks.map(\.description) + compressedDamage + badScales + (unreadable.map { [$0] } ?? [])
    }
}

extension FolioFile {
    /// Checks the chunk-hash table and, when it is intact, recomputes every data chunk's
    /// checksum. Pages are released as it goes so that memory use stays flat.
    ///
    /// A remote file is fetched window by window as raw bytes (not through the chunk check
    /// that guards ordinary reads), so that damage is reported here the same way as for a
    /// local file.
    public func verify(progress: ((Int, Int) -> Void)? = nil) -> VerifyReport {
        let h = header
        var damaged: [ChunkDamage] = []
        var tableDamage: String? = nil
        let remote = map.remote
        var unreadable: String? = nil
        if let remote {
            do { try remote.ensureRaw([h.trailerOffset..<fileSize]) } catch {
                return VerifyReport(tableDamage: nil, damagedChunks: [], unreadable: "\(error)")
            }
        }
        map.withBytes { all in
            let table = UnsafeRawBufferPointer(rebasing: all[h.trailerOffset..<(h.trailerOffset + h.chunkCount * 8)])
            let stored = all.loadUnaligned(fromByteOffset: all.count - 16, as: UInt64.self).littleEndian
            let actual = Checksum.xxh3(table)
            if stored != actual {
                // The per-chunk hashes cannot be trusted, so no chunk is blamed.
                tableDamage = "the chunk checksum table (bytes \(h.trailerOffset)..<\(all.count - 8)) is damaged: stored \(hex(stored)), computed \(hex(actual)); data chunks cannot be checked"
                return
            }
            for c in 0..<h.chunkCount {
                if let remote, c % 64 == 0 {
                    let lo = h.dataOffset + c * h.chunkSize
                    do { try remote.ensureRaw([lo..<min(h.dataOffset + h.dataSize, lo + 64 * h.chunkSize)]) } catch {
                        unreadable = "\(error)"
                        break
                    }
                }
                let start = c * h.chunkSize
                let end = min(h.dataSize, start + h.chunkSize)
                let bytes = UnsafeRawBufferPointer(rebasing: all[(h.dataOffset + start)..<(h.dataOffset + end)])
                let stored = all.loadUnaligned(fromByteOffset: h.trailerOffset + c * 8, as: UInt64.self).littleEndian
                if Checksum.xxh3(bytes) != stored {
                    damaged.append(ChunkDamage(chunk: c, byteRange: (h.dataOffset + start)..<(h.dataOffset + end),
                                               culprits: culprits(start..<end)))
                }
                if c % 64 == 63 || c == h.chunkCount - 1 {
                    let lo = c / 64 * 64 * h.chunkSize
                    if let remote { remote.dropRaw((h.dataOffset + lo)..<(h.dataOffset + end)) } else { releaseBytes(offset: lo, length: 64 * h.chunkSize) }
                }
                progress?(c + 1, h.chunkCount)
            }
        }
        var report = VerifyReport(tableDamage: tableDamage, damagedChunks: damaged, unreadable: unreadable)
        if unreadable != nil { return report }
        report.compressedDamage = verifyCompressedTensors(decompress: true)
        if tableDamage == nil { report.badScales = nonFiniteScales() + compressedNonFiniteScales() }
        return report
    }

    /// Where a quantized record keeps its scales (and minimums): how many, and whether they
    /// are float32 (one per row) or float16; nil for plain dtypes.
    static func scaleLayout(_ t: TensorInfo) -> (fields: Int, isF32: Bool)? {
        let width = t.rowWidth
        switch t.encoding {
        case .int8(nil): return (1, true)
        case let .int8(g?): return (width / g, false)
        case let .int4(g), let .affine8(g), let .int3(g), let .int2(g): return (2 * (width / g), false)
        case .plain: return nil
        }
    }

    /// Whether every scale and minimum at the start of a record is finite.
    static func scalesAreFinite(_ rec: UnsafeRawPointer, _ layout: (fields: Int, isF32: Bool)) -> Bool {
        for k in 0..<layout.fields {
            let v: Float = layout.isF32 ? rec.loadUnaligned(fromByteOffset: 4 * k, as: Float.self)
                : Float(Float16(bitPattern: rec.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
            if !v.isFinite { return false }
        }
        return true
    }

    /// Scans the scales and minimums of every quantized tensor; one line per tensor that has
    /// non-finite ones, naming the first such row.
    func nonFiniteScales() -> [String] {
        var out: [String] = []
        map.withBytes { all in
            for t in header.tensors {
                guard let p = t.paged, t.encoding.isQuantized, t.rowCount > 0, !t.isCompressed else { continue }
                guard let layout = Self.scaleLayout(t) else { continue }
                var bad = 0, first = -1
                for r in 0..<t.rowCount {
                    let rec = all.baseAddress! + header.dataOffset + t.offset + p.rowOffset(r)
                    if !Self.scalesAreFinite(rec, layout) { bad += 1; if first < 0 { first = r } }
                }
                if bad > 0 {
                    out.append("tensor '\(t.name)': \(bad) row(s) have a NaN or infinite scale or minimum, the first is row \(first)")
                }
                release(t)
            }
        }
        return out
    }

    /// Names what lies in a data-relative byte range.
    func culprits(_ range: Range<Int>) -> [String] {
        var out: [String] = []
        for t in header.tensors where t.nbytes > 0 {
            if t.isCompressed {
                let lo = max(range.lowerBound, t.offset), hi = min(range.upperBound, t.offset + t.storedBytes)
                if lo < hi { out.append("tensor '\(t.name)' (compressed) stored bytes \(lo - t.offset)..<\(hi - t.offset)") }
                continue
            }
            let lo = max(range.lowerBound, t.offset), hi = min(range.upperBound, t.offset + t.nbytes)
            guard lo < hi else { continue }
            if let p = t.paged {
                let firstPage = (lo - t.offset) / p.blockSize
                let lastPage = (hi - 1 - t.offset) / p.blockSize
                let firstRow = firstPage * p.rowsPerPage
                let lastRow = min(t.rowCount - 1, (lastPage + 1) * p.rowsPerPage - 1)
                out.append("tensor '\(t.name)' pages \(firstPage)...\(lastPage) (rows \(firstRow)...\(lastRow))")
            } else {
                out.append("tensor '\(t.name)' bytes \(lo - t.offset)..<\(hi - t.offset)")
            }
        }
        for f in header.files where f.nbytes > 0 {
            if max(range.lowerBound, f.offset) < min(range.upperBound, f.offset + f.nbytes) {
                out.append("embedded file '\(f.name)'")
            }
        }
        return out
    }
}
