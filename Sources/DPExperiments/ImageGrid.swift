import DPTensor
import Foundation

/// A grid of small images as SVG, one `<rect>` per pixel (no image codec, no dependency): rows
/// of examples with a title at the left and a caption under each image.
///
/// Values are drawn in [0, 1] (clipped): grey for one channel, RGB for three, the first channel
/// otherwise.
public struct ImageGrid {
    public struct Row {
        public var title: String
        /// Examples `[C, H, W]`, values in [0, 1].
        public var images: [Tensor<Float>]
        public var captions: [String]

        public init(title: String, images: [Tensor<Float>], captions: [String]) {
            self.title = title
            self.images = images
            self.captions = captions
        }
    }

    public var title: String
    public var rows: [Row]
    /// Screen pixels per image pixel.
    public var scale = 4.0

    public init(title: String, rows: [Row]) {
        self.title = title
        self.rows = rows
    }

    public var svg: String {
        let height = Double(rows.first?.images.first?.shape[1] ?? 0),
            width = Double(rows.first?.images.first?.shape[2] ?? 0)
        let cellW = max(width * scale, 130) + 12, cellH = height * scale + 34
        let left = 180.0, top = 40.0
        let columns = rows.map(\.images.count).max() ?? 0
        let docW = left + Double(columns) * cellW + 10, docH = top + Double(rows.count) * cellH + 10
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(SVG.f(docW))" height="\(SVG.f(docH))" viewBox="0 0 \(SVG.f(docW)) \(SVG.f(docH))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(SVG.f(docW / 2))" y="24" text-anchor="middle" font-size="\(SVG.f(SVG.panelTitleSize))">\(SVG.escape(title))</text>

            """
        for (r, row) in rows.enumerated() {
            let y0 = top + Double(r) * cellH
            out +=
                "<text x=\"\(SVG.f(left - 10))\" y=\"\(SVG.f(y0 + height * scale / 2))\" text-anchor=\"end\" font-size=\"\(SVG.f(SVG.axisLabelSize))\">\(SVG.escape(row.title))</text>\n"
            for (c, image) in row.images.enumerated() {
                let x0 = left + Double(c) * cellW
                out +=
                    "<g transform=\"translate(\(SVG.f(x0)),\(SVG.f(y0))) scale(\(SVG.f(scale)))\" shape-rendering=\"crispEdges\">"
                out += pixels(image)
                out += "</g>\n"
                if c < row.captions.count {
                    out +=
                        "<text x=\"\(SVG.f(x0 + width * scale / 2))\" y=\"\(SVG.f(y0 + height * scale + 16))\" text-anchor=\"middle\" font-size=\"\(SVG.f(SVG.tickSize))\">\(SVG.escape(row.captions[c]))</text>\n"
                }
            }
        }
        return out + "</svg>\n"
    }

    private func pixels(_ image: Tensor<Float>) -> String {
        let channels = image.shape[0], h = image.shape[1], w = image.shape[2]
        let v = image.scalars
        func byte(_ x: Float) -> Int { Int((min(max(x, 0), 1) * 255).rounded()) }
        var s = ""
        for i in 0..<h {
            for j in 0..<w {
                let k = i * w + j
                let (r, g, b) =
                    channels == 3
                    ? (byte(v[k]), byte(v[h * w + k]), byte(v[2 * h * w + k])) : (byte(v[k]), byte(v[k]), byte(v[k]))
                s += "<rect x=\"\(j)\" y=\"\(i)\" width=\"1\" height=\"1\" fill=\"#\(hex(r))\(hex(g))\(hex(b))\"/>"
            }
        }
        return s
    }

    private func hex(_ x: Int) -> String { String(format: "%02x", x) }
}
