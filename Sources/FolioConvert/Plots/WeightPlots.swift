import Foundation
import Folio

/// Pictures of weights: `folio inspect FILE --plot DIR` and `folio diff A B --plot DIR`.
///
/// For every floating-point tensor, PNG charts streamed over its (dequantized) rows, and one
/// `index.html` per run with a table of the numbers beside the pictures:
/// - inspect: the histogram of its values (counts on a log scale, so tails and outliers
///   show); for a quantized tensor also each row's mean quantization step (its scales:
///   every value is within half a step of the original) across the rows;
/// - diff: both files' value histograms overlaid, the histogram of the error B − A, each
///   row's RMS error across the rows (the mean and the largest of the rows a pixel column
///   covers), and the histogram of the largest |error| in each group of 32 values of a row.
public enum WeightPlots {
    static let bins = 96
    static let chartWidth = 720, chartHeight = 240

    /// Writes the inspect pictures into `dir` (created); returns the overview page's path.
    public static func inspect(_ path: String, filter: Glob?, into dir: String) throws -> String {
        let c = try Checkpoint.open(path)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var names = FileNames()
        var rowsHTML: [String] = []
        for t in c.tensors where filter?.matches(t.name) ?? true {
            guard t.encoding.isQuantized || (t.encoding.plainDType?.isFloatingPoint ?? false), t.elementCount > 0 else { continue }
            let stats = try Inspector.valueStats(t)
            var hist = Histogram(lo: stats.min, hi: stats.max, bins: bins)
            try forEachRow(t) { row in for v in row { hist.add(Double(v)) } }
            let base = names.unique(t.name)
            var images = [try write(histogramChart([(hist, Canvas.blue)], xLabel: "value"), dir, base + ".values.png")]
            if t.encoding.isQuantized, t.rowCount > 1 {
                images.append(try write(try rowChart(stepsPerRow(t), label: "mean step per row"), dir, base + ".steps.png"))
            }
            let cells = [t.encoding.name, "\(t.shape)", fmt(stats.min), fmt(stats.max), fmt(stats.mean), fmt(stats.std)]
            rowsHTML.append(row(t.name, cells, images))
        }
        return try page(dir, title: "folio inspect \(path)", columns: ["tensor", "dtype", "shape", "min", "max", "mean", "std"], rows: rowsHTML)
    }

    /// Writes the diff pictures of the tensors A and B share (same shape) into `dir`.
    public static func diff(_ a: String, _ b: String, into dir: String) throws -> String {
        let ca = try Checkpoint.open(a), cb = try Checkpoint.open(b)
        let byName = Dictionary(cb.tensors.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var names = FileNames()
        var rowsHTML: [String] = []
        for ta in ca.tensors {
            guard let tb = byName[ta.name], ta.shape == tb.shape, ta.elementCount > 0 else { continue }
            guard [ta, tb].allSatisfy({ $0.encoding.isQuantized || ($0.encoding.plainDType?.isFloatingPoint ?? false) }) else { continue }
            // Pass 1: ranges, per-row RMS error, overall error.
            var lo = Double.infinity, hi = -Double.infinity, elo = Double.infinity, ehi = -Double.infinity
            var rowError = RowSeries(rows: ta.rowCount)
            var stats = ErrorStats()
            try forEachRowPair(ta, tb) { r, x, y in
                var s = 0.0
                for i in x.indices {
                    let d = Double(y[i]) - Double(x[i])
                    lo = min(lo, Double(x[i]), Double(y[i])); hi = max(hi, Double(x[i]), Double(y[i]))
                    elo = min(elo, d); ehi = max(ehi, d)
                    s += d * d
                }
                rowError.add(row: r, (s / Double(max(1, x.count))).squareRoot())
                x.withUnsafeBufferPointer { xb in y.withUnsafeBufferPointer { yb in stats.add(reference: xb.baseAddress!, result: yb.baseAddress!, count: x.count) } }
            }
            // Pass 2: histograms.
            var ha = Histogram(lo: lo, hi: hi, bins: bins), hb = Histogram(lo: lo, hi: hi, bins: bins)
            var he = Histogram(lo: elo, hi: ehi, bins: bins)
            var groupMax: [Double] = []
            try forEachRowPair(ta, tb) { _, x, y in
                var g = 0.0
                for i in x.indices {
                    ha.add(Double(x[i])); hb.add(Double(y[i]))
                    let d = Double(y[i]) - Double(x[i])
                    he.add(d)
                    g = max(g, abs(d))
                    if i % 32 == 31 || i == x.count - 1 { groupMax.append(g); g = 0 }
                }
            }
            var hg = Histogram(lo: 0, hi: groupMax.max() ?? 0, bins: bins)
            for g in groupMax { hg.add(g) }
            let base = names.unique(ta.name)
            var images = [
                try write(histogramChart([(ha, Canvas.blue), (hb, Canvas.orange)], xLabel: "value: a blue, b orange"), dir, base + ".values.png"),
                try write(histogramChart([(he, Canvas.red)], xLabel: "error b - a"), dir, base + ".error.png"),
            ]
            if ta.rowCount > 1 { images.append(try write(try rowChart(rowError, label: "rms error per row"), dir, base + ".rows.png")) }
            images.append(try write(histogramChart([(hg, Canvas.red)], xLabel: "max abs error per group of 32"), dir, base + ".groups.png"))
            let cells = ["\(ta.encoding.name) / \(tb.encoding.name)", "\(ta.shape)", fmt(stats.rmse), fmt(stats.maxAbsError), String(format: "%.6f", stats.cosine)]
            rowsHTML.append(row(ta.name, cells, images))
        }
        return try page(dir, title: "folio diff \(a) \(b)", columns: ["tensor", "dtype", "shape", "rmse", "max_abs_error", "cosine"], rows: rowsHTML)
    }

    // MARK: data

    struct Histogram {
        let lo: Double, hi: Double
        var counts: [Int]
        init(lo: Double, hi: Double, bins: Int) {
            let l = lo.isFinite ? lo : 0, h = hi.isFinite ? hi : 0
            self.lo = l
            self.hi = h > l ? h : max(l + 1, l.nextUp)
            counts = [Int](repeating: 0, count: bins)
        }
        mutating func add(_ v: Double) {
            guard v.isFinite else { return }
            let f = (v - lo) / (hi - lo) * Double(counts.count)
            let i = f.isFinite ? Int(min(max(f, 0), Double(counts.count - 1))) : (v > lo ? counts.count - 1 : 0)
            counts[i] += 1
        }
    }

    /// A value per row, kept as the mean and the maximum over at most 720 buckets of rows.
    struct RowSeries {
        let rows: Int
        var sum: [Double], count: [Int], maximum: [Double]
        init(rows: Int) {
            self.rows = rows
            let n = min(rows, WeightPlots.chartWidth)
            sum = [Double](repeating: 0, count: n); count = [Int](repeating: 0, count: n); maximum = [Double](repeating: 0, count: n)
        }
        mutating func add(row: Int, _ v: Double) {
            guard v.isFinite else { return }  // a NaN or infinite row (a damaged scale) is left out
            let b = row * sum.count / max(1, rows)
            sum[b] += v; count[b] += 1; maximum[b] = max(maximum[b], v)
        }
    }

    static func forEachRow(_ t: SourceTensor, _ body: ([Float]) throws -> Void) throws {
        try forEachRowPair(t, nil) { _, x, _ in try body(x) }
    }

    /// Rows of one tensor (or of two of the same shape), dequantized, in steps of about 4M values.
    static func forEachRowPair(_ a: SourceTensor, _ b: SourceTensor?, _ body: (Int, [Float], [Float]) throws -> Void) throws {
        let width = a.rowWidth, rows = a.shape.isEmpty ? 1 : a.rowCount
        let step = Converter.rowsPerStep(width: width)
        var x = [Float](repeating: 0, count: min(rows, step) * width), y = b == nil ? [] : x
        var r = 0
        while r < rows {
            let n = min(step, rows - r)
            try x.withUnsafeMutableBufferPointer { try a.readRows(start: r, count: n, into: $0.baseAddress!) }
            if let b { try y.withUnsafeMutableBufferPointer { try b.readRows(start: r, count: n, into: $0.baseAddress!) } }
            for i in 0..<n {
                try body(r + i, Array(x[(i * width)..<((i + 1) * width)]), b == nil ? [] : Array(y[(i * width)..<((i + 1) * width)]))
            }
            r += n
        }
        a.release()
        b?.release()
    }

    /// Each row's mean quantization step, from its records: the scale of symmetric codes,
    /// the scale of affine ones (a step between adjacent codes in both).
    static func stepsPerRow(_ t: SourceTensor) throws -> RowSeries {
        var series = RowSeries(rows: t.rowCount)
        guard let rs = t.recordSize else { return series }
        let width = t.rowWidth
        let step = max(1, (4 << 20) / rs)
        var buf = [UInt8](repeating: 0, count: min(step, t.rowCount) * rs)
        var r = 0
        while r < t.rowCount {
            let n = min(step, t.rowCount - r)
            try buf.withUnsafeMutableBytes { p in
                try t.copyRecords(start: r, count: n, into: p.baseAddress!)
                for i in 0..<n {
                    let rec = p.baseAddress! + i * rs
                    var scales: [Float] = []
                    switch t.encoding {
                    case .int8(let g?):
                        scales = (0..<(width / g)).map { Float(Float16(bitPattern: rec.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
                    case .int8(nil):
                        scales = [rec.loadUnaligned(as: Float.self)]
                    case .int4(let g), .affine8(let g), .int3(let g), .int2(let g):
                        scales = (0..<(width / g)).map { Float(Float16(bitPattern: rec.loadUnaligned(fromByteOffset: 4 * $0, as: UInt16.self))) }
                    default: break
                    }
                    series.add(row: r + i, scales.isEmpty ? 0 : Double(scales.reduce(0, +)) / Double(scales.count))
                }
            }
            r += n
        }
        t.release()
        return series
    }

    // MARK: charts

    static let left = 64, right = 16, top = 14, bottom = 40

    /// Histograms on one x axis, counts as log10(1 + count).
    static func histogramChart(_ series: [(Histogram, Canvas.Color)], xLabel: String) -> Canvas {
        var c = Canvas(width: chartWidth, height: chartHeight)
        let plotW = chartWidth - left - right, plotH = chartHeight - top - bottom
        let peak = series.flatMap { $0.0.counts }.max() ?? 0
        let scale = log10(1 + Double(max(peak, 1)))
        for (k, (h, color)) in series.enumerated() {
            let n = h.counts.count
            var previous: (Int, Int)? = nil
            for (i, count) in h.counts.enumerated() {
                let x0 = left + i * plotW / n, x1 = left + (i + 1) * plotW / n - 1
                let y = top + plotH - Int(Double(plotH) * log10(1 + Double(count)) / scale)
                if k == 0 {
                    if count > 0 { c.fill(x0: x0, y0: y, x1: x1, y1: top + plotH - 1, series.count == 1 ? color : Canvas.lightBlue) }
                } else {
                    let mid = (x0 + x1) / 2
                    if let p = previous { c.line(p.0, p.1, mid, y, color); c.line(p.0, p.1 + 1, mid, y + 1, color) }
                    previous = (mid, y)
                }
            }
        }
        axes(&c, plotW: plotW, plotH: plotH)
        let h = series[0].0
        c.text(fmt(h.lo), x: left, y: top + plotH + 6)
        c.text(fmt(h.hi), x: left + plotW, y: top + plotH + 6, anchor: 2)
        if h.lo < 0 && h.hi > 0 {
            let zx = left + Int(Double(plotW) * (-h.lo) / (h.hi - h.lo))
            c.line(zx, top, zx, top + plotH, Canvas.grey)
            c.text("0", x: zx, y: top + plotH + 6, anchor: 1)
        }
        c.text(xLabel, x: left + plotW / 2, y: top + plotH + 22, anchor: 1)
        c.text(String(peak), x: left - 4, y: top, anchor: 2)
        c.text("1", x: left - 4, y: top + plotH - 10, anchor: 2)
        c.text("LOG N", x: left - 4, y: top + plotH / 2, anchor: 2)
        return c
    }

    /// A value per row across the rows: the largest of each pixel column's rows as a light
    /// band, their mean as a line.
    static func rowChart(_ s: RowSeries, label: String) throws -> Canvas {
        var c = Canvas(width: chartWidth, height: chartHeight)
        let plotW = chartWidth - left - right, plotH = chartHeight - top - bottom
        let peak = min(max(s.maximum.max() ?? 0, 1e-30), .greatestFiniteMagnitude)
        let n = s.sum.count
        var previous: (Int, Int)? = nil
        for i in 0..<n where s.count[i] > 0 {
            let x0 = left + i * plotW / n, x1 = max(x0, left + (i + 1) * plotW / n - 1)
            func px(_ v: Double) -> Int {
                let f = Double(plotH) * v / peak
                return f.isFinite ? Int(min(max(f, 0), Double(plotH))) : plotH
            }
            let yMax = top + plotH - px(s.maximum[i])
            c.fill(x0: x0, y0: yMax, x1: x1, y1: top + plotH - 1, Canvas.lightBlue)
            let y = top + plotH - px(s.sum[i] / Double(s.count[i]))
            let mid = (x0 + x1) / 2
            if let p = previous { c.line(p.0, p.1, mid, y, Canvas.blue) } else { c.set(mid, y, Canvas.blue) }
            previous = (mid, y)
        }
        axes(&c, plotW: plotW, plotH: plotH)
        c.text("0", x: left, y: top + plotH + 6)
        c.text(String(s.rows - 1), x: left + plotW, y: top + plotH + 6, anchor: 2)
        c.text("row", x: left + plotW / 2, y: top + plotH + 6, anchor: 1)
        c.text(label, x: left + plotW / 2, y: top + plotH + 22, anchor: 1)
        c.text(fmt(peak), x: left - 4, y: top, anchor: 2)
        c.text("0", x: left - 4, y: top + plotH - 8, anchor: 2)
        return c
    }

    static func axes(_ c: inout Canvas, plotW: Int, plotH: Int) {
        c.line(left - 1, top, left - 1, top + plotH, Canvas.black)
        c.line(left - 1, top + plotH, left + plotW, top + plotH, Canvas.black)
    }

    // MARK: files

    struct FileNames {
        var used = Set<String>()
        mutating func unique(_ name: String) -> String {
            let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(120))
            var candidate = safe, k = 2
            while used.contains(candidate) { candidate = "\(safe)-\(k)"; k += 1 }
            used.insert(candidate)
            return candidate
        }
    }

    static func write(_ c: Canvas, _ dir: String, _ name: String) throws -> String {
        try FileSystem.writeAtomically(dir + "/" + name, try c.png())
        return name
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func row(_ name: String, _ cells: [String], _ images: [String]) -> String {
        let imgs = images.map { "<img src=\"\(escape($0))\" width=\"360\" alt=\"\(escape($0))\">" }.joined()
        return "<tr><td><b>\(escape(name))</b></td>" + cells.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n<tr><td colspan=\"\(cells.count + 1)\">\(imgs)</td></tr>\n"
    }

    static func page(_ dir: String, title: String, columns: [String], rows: [String]) throws -> String {
        let html = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}img{margin:2px;border:1px solid #eee}</style>
        </head><body><h1>\(escape(title))</h1>
        <p>Histograms count values on a log scale (log10(1 + n)), so a few outliers still show. Click an image for full size.</p>
        <table><tr>\(columns.map { "<th>\(escape($0))</th>" }.joined())</tr>
        \(rows.joined())</table></body></html>

        """
        let path = dir + "/index.html"
        try FileSystem.writeAtomically(path, Array(html.utf8))
        return path
    }

    static func fmt(_ v: Double) -> String {
        guard v.isFinite else { return "\(v)" }
        return String(format: "%.4g", v)
    }
}
