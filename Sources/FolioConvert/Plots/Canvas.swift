import Foundation
import ZIPFoundation

/// An RGB raster with the few drawing operations the weight plots need, written as PNG
/// (8-bit truecolor; the image data deflated by zlib through ZIPFoundation, wrapped in the
/// zlib format with its Adler-32, each chunk with its CRC-32; PNG specification, 3rd edition).
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    typealias Color = (UInt8, UInt8, UInt8)
    static let white: Color = (255, 255, 255), black: Color = (0, 0, 0), grey: Color = (200, 200, 200)
    static let blue: Color = (49, 104, 181), orange: Color = (230, 126, 34), red: Color = (200, 40, 40), lightBlue: Color = (170, 196, 232)

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: Color) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, _ c: Color) {
        let ya = max(0, min(y0, y1)), yb = min(height - 1, max(y0, y1))
        let xa = max(0, min(x0, x1)), xb = min(width - 1, max(x0, x1))
        guard ya <= yb, xa <= xb else { return }  // entirely off the canvas
        for y in ya...yb {
            for x in xa...xb { set(x, y, c) }
        }
    }

    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: Color) {
        let n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in 0...n {
            set(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, c)
        }
    }

    /// Text in a 5x7 pixel font (digits, letters, a few signs), scaled by `scale`; `anchor`
    /// 0 left, 1 centre, 2 right aligned at x.
    mutating func text(_ s: String, x: Int, y: Int, _ c: Color = Canvas.black, scale: Int = 1, anchor: Int = 0) {
        let chars = Array(s.uppercased())
        let w = chars.count * 6 * scale
        var cx = anchor == 0 ? x : anchor == 1 ? x - w / 2 : x - w
        for ch in chars {
            if let rows = Self.font[ch] {
                for (r, bits) in rows.enumerated() {
                    for col in 0..<5 where bits & (1 << (4 - col)) != 0 {
                        fill(x0: cx + col * scale, y0: y + r * scale, x1: cx + col * scale + scale - 1, y1: y + r * scale + scale - 1, c)
                    }
                }
            }
            cx += 6 * scale
        }
    }

    func png() throws -> [UInt8] {
        var raw = Data(capacity: (width * 3 + 1) * height)
        for y in 0..<height {
            raw.append(0)  // filter: none
            raw.append(contentsOf: pixels[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var deflated = Data()
        _ = try Data.compress(size: Int64(raw.count), bufferSize: 1 << 16, provider: { position, size in
            raw.subdata(in: Int(position)..<(Int(position) + size))
        }, consumer: { deflated.append($0) })
        var zlib = Data([0x78, 0x01])
        zlib.append(deflated)
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        zlib.append(contentsOf: Self.bigEndian(b << 16 | a))
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: Data) {
            out += Self.bigEndian(UInt32(body.count))
            var typed = Data(type.utf8)
            typed.append(body)
            out += typed
            out += Self.bigEndian(typed.crc32(checksum: 0))
        }
        var header = Data(Self.bigEndian(UInt32(width)) + Self.bigEndian(UInt32(height)))
        header.append(contentsOf: [8, 2, 0, 0, 0])  // 8-bit RGB, deflate, no filter method, no interlace
        chunk("IHDR", header)
        chunk("IDAT", zlib)
        chunk("IEND", Data())
        return out
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    /// 5x7 glyphs, one byte per row, bit 4 leftmost.
    static let font: [Character: [UInt8]] = [
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], "-": [0, 0, 0, 0x1F, 0, 0, 0], "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0], "/": [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10], " ": [0, 0, 0, 0, 0, 0, 0],
        "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        "=": [0, 0, 0x1F, 0, 0x1F, 0, 0], "|": [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], "_": [0, 0, 0, 0, 0, 0, 0x1F],
        "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        "Y": [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
    ]
}
