import DPTensor
import Foundation

/// Images in a labelled grid, written as one SVG file: rows with a label on the left, columns
/// in titled groups, an optional caption under each group of a row. Each image is embedded as
/// a small PNG (`data:` URI, 8-bit grey or RGB, drawn with `image-rendering: pixelated` so the
/// pixels stay square when scaled), so a grid of a hundred 28x28 images is about 200 KB and
/// renders the same in browsers and in `rsvg-convert` (which makes the PNG of the grid).
public struct ImageGrid: Sendable {
    /// The images of one row that fall in one column group, and a caption under them.
    public struct Group: Sendable {
        /// Flat images of ``ImageGrid/imageShape`` (`[C, H, W]`, C = 1 or 3).
        public var images: [[Float]]
        public var caption: String?

        public init(images: [[Float]], caption: String? = nil) {
            self.images = images
            self.caption = caption
        }
    }

    public struct Row: Sendable {
        public var label: String
        /// One entry per column group (fewer: the rest are empty).
        public var groups: [Group]

        public init(label: String, groups: [Group]) {
            self.label = label
            self.groups = groups
        }
    }

    public var title: String
    public var columnGroups: [String]
    public var rows: [Row]
    /// `[C, H, W]` with C = 1 (grey) or 3 (RGB).
    public var imageShape: Shape
    /// The pixel values shown as black and white; values outside are clamped.
    public var range: ClosedRange<Double>
    /// Screen pixels per image pixel.
    public var scale: Int

    public init(
        title: String, columnGroups: [String], rows: [Row], imageShape: Shape, range: ClosedRange<Double> = 0...1,
        scale: Int = 2
    ) {
        precondition(
            imageShape.rank == 3 && (imageShape[0] == 1 || imageShape[0] == 3),
            "ImageGrid: image shape \(imageShape) should be [1 or 3, H, W]")
        precondition(scale >= 1, "ImageGrid: scale \(scale) must be >= 1")
        self.title = title
        self.columnGroups = columnGroups
        self.rows = rows
        self.imageShape = imageShape
        self.range = range
        self.scale = scale
    }

    // Layout (px).
    static let labelWidth = 190.0, gap = 3.0, groupGap = 18.0, margin = 12.0
    static let titleHeight = 30.0, headerHeight = 20.0, captionHeight = 14.0, rowGap = 6.0

    /// The SVG document.
    public func svg() -> String {
        let cellW = Double(imageShape[2] * scale), cellH = Double(imageShape[1] * scale)
        let groupCount = max(columnGroups.count, rows.map(\.groups.count).max() ?? 0)
        // Each group is as wide as its widest row (and its title).
        let groupWidths = (0..<groupCount).map { g -> Double in
            let images = rows.map { $0.groups.count > g ? $0.groups[g].images.count : 0 }.max() ?? 0
            let imagesWidth = Double(images) * cellW + Double(max(0, images - 1)) * Self.gap
            let title = g < columnGroups.count ? Self.textWidth(columnGroups[g], size: 12) : 0
            let captions =
                rows.compactMap { $0.groups.count > g ? $0.groups[g].caption : nil }
                .map { Self.textWidth($0, size: 10) }.max() ?? 0
            return max(imagesWidth, title, captions, cellW)
        }
        var groupX: [Double] = []
        var x = Self.margin + Self.labelWidth
        for w in groupWidths {
            groupX.append(x)
            x += w + Self.groupGap
        }
        let width = max(x - Self.groupGap + Self.margin, Self.textWidth(title, size: 15) + 2 * Self.margin)
        let hasCaptions = rows.contains { $0.groups.contains { $0.caption != nil } }
        let rowHeight = cellH + (hasCaptions ? Self.captionHeight : 0) + Self.rowGap
        let top = Self.margin + Self.titleHeight + Self.headerHeight
        let height = top + Double(rows.count) * rowHeight + Self.margin
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="\(Int(width.rounded(.up)))" height="\(Int(height.rounded(.up)))" viewBox="0 0 \(Int(width.rounded(.up))) \(Int(height.rounded(.up)))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="\(Int(width.rounded(.up)))" height="\(Int(height.rounded(.up)))" fill="white"/>
            <text x="\(Self.f(Self.margin))" y="\(Self.f(Self.margin + 18))" font-size="15" font-weight="bold">\(Self.escape(title))</text>

            """
        for (g, name) in columnGroups.enumerated() where g < groupX.count {
            out +=
                "<text x=\"\(Self.f(groupX[g]))\" y=\"\(Self.f(top - 6))\" font-size=\"12\" font-weight=\"bold\">\(Self.escape(name))</text>\n"
        }
        for (r, row) in rows.enumerated() {
            let y = top + Double(r) * rowHeight
            out +=
                "<text x=\"\(Self.f(Self.margin))\" y=\"\(Self.f(y + cellH / 2 + 4))\" font-size=\"11\">\(Self.escape(row.label))</text>\n"
            for (g, group) in row.groups.enumerated() where g < groupX.count {
                for (i, image) in group.images.enumerated() {
                    let ix = groupX[g] + Double(i) * (cellW + Self.gap)
                    let uri = "data:image/png;base64," + Data(png(image)).base64EncodedString()
                    out +=
                        "<image x=\"\(Self.f(ix))\" y=\"\(Self.f(y))\" width=\"\(Self.f(cellW))\" height=\"\(Self.f(cellH))\" preserveAspectRatio=\"none\" image-rendering=\"pixelated\" style=\"image-rendering:pixelated;image-rendering:crisp-edges\" xlink:href=\"\(uri)\"/>\n"
                }
                if let caption = group.caption {
                    out +=
                        "<text x=\"\(Self.f(groupX[g]))\" y=\"\(Self.f(y + cellH + 11))\" font-size=\"10\" fill=\"#444444\">\(Self.escape(caption))</text>\n"
                }
            }
        }
        return out + "</svg>\n"
    }

    /// One image as PNG bytes, pixels mapped from ``range`` to 0...255.
    func png(_ image: [Float]) -> [UInt8] {
        let c = imageShape[0], h = imageShape[1], w = imageShape[2]
        precondition(image.count == c * h * w, "ImageGrid: an image of \(image.count) pixels for shape \(imageShape)")
        let lo = range.lowerBound, span = range.upperBound - range.lowerBound
        var bytes = [UInt8](repeating: 0, count: h * w * c)
        for y in 0..<h {
            for x in 0..<w {
                for ch in 0..<c {
                    let v = (Double(image[(ch * h + y) * w + x]) - lo) / span
                    let level = v.isNaN ? 0 : min(max(v, 0), 1) * 255
                    bytes[(y * w + x) * c + ch] = UInt8(level.rounded())
                }
            }
        }
        return PNG.encode(pixels: bytes, width: w, height: h, channels: c)
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    /// An estimate of the width of `text` in px (DejaVu Sans averages about 0.6 em per character).
    static func textWidth(_ text: String, size: Double) -> Double { Double(text.count) * size * 0.6 }

    /// Text for SVG content and attributes: markup characters as entities, control characters as spaces.
    static func escape(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value): out += " "
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// A minimal PNG encoder (ISO/IEC 15948): 8-bit grey (1 channel) or RGB (3 channels), no
/// interlace, filter 0 on every row, and the image data in a zlib stream of stored (not
/// compressed) deflate blocks (RFC 1950, RFC 1951 section 3.2.4), so no zlib is needed.
enum PNG {
    static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) -> [UInt8] {
        precondition(channels == 1 || channels == 3, "PNG: \(channels) channels (1 or 3)")
        precondition(
            pixels.count == width * height * channels, "PNG: \(pixels.count) bytes for \(width)x\(height)x\(channels)")
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (1 + width * channels))
        for y in 0..<height {
            raw.append(0) // filter type None
            raw += pixels[(y * width * channels)..<((y + 1) * width * channels)]
        }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [8, channels == 1 ? 0 : 2, 0, 0, 0] // depth, colour type, compression, filter, interlace
        chunk("IHDR", header, into: &out)
        chunk("IDAT", zlibStored(raw), into: &out)
        chunk("IEND", [], into: &out)
        return out
    }

    static func bigEndian(_ x: UInt32) -> [UInt8] {
        [UInt8(x >> 24), UInt8((x >> 16) & 0xFF), UInt8((x >> 8) & 0xFF), UInt8(x & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8], into out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        out += bigEndian(UInt32(data.count))
        out += typeBytes
        out += data
        out += bigEndian(crc32(typeBytes + data))
    }

    /// A zlib stream (deflate, 32 KiB window, no dictionary) of stored blocks of at most 65,535 bytes.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var start = 0
        repeat {
            let n = min(65_535, data.count - start)
            let final: UInt8 = start + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[start..<(start + n)]
            start += n
        } while start < data.count
        return out + bigEndian(adler32(data))
    }

    static func adler32(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return (b << 16) | a
    }

    /// CRC-32 (ISO 3309, polynomial 0xEDB88320 reflected), as PNG chunks use it.
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }
}
