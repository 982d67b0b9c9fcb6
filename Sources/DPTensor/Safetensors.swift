import Foundation

/// The safetensors file format (Hugging Face, <https://github.com/huggingface/safetensors>), for
/// `Float` tensors: what PyTorch (`safetensors.torch.load_file`), JAX and NumPy users load.
///
/// Layout: an 8-byte little-endian unsigned header length `N`; `N` bytes of UTF-8 JSON mapping
/// each tensor name to `{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}` (byte
/// offsets into the data section) plus an optional `"__metadata__"` map of strings to strings;
/// then the data section: every tensor's scalars, row-major, little-endian, back to back. The
/// header is padded with spaces to a multiple of 8 bytes. Only `F32` is written or read here.
public enum Safetensors {
    /// The largest header this reader accepts (the format's own limit is 100 MB).
    public static let maximumHeaderLength = 100_000_000

    /// The file's bytes for `tensors` (written in the order given) and `metadata`.
    public static func encode(
        _ tensors: [(name: String, tensor: Tensor<Float>)], metadata: [String: String] = [:]
    ) -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.scalarCount * MemoryLayout<Float>.size
            header[name] =
                ["dtype": "F32", "shape": t.shape.array, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            t.withUnsafeBufferPointer { p in
                for x in p { withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            }
        }
        return out
    }

    /// The tensors (by name) and metadata of a safetensors file.
    /// - Throws: ``SafetensorsError`` naming what is wrong: a short file, a header that is not
    ///   a JSON object, a dtype other than F32, a shape or offsets that do not fit the data.
    public static func decode(_ data: Data) throws -> (tensors: [String: Tensor<Float>], metadata: [String: String]) {
        guard data.count >= 8 else {
            throw SafetensorsError(
                "the file has \(data.count) bytes; a safetensors file starts with an 8-byte header length")
        }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(maximumHeaderLength), Int(n) <= data.count - 8 else {
            throw SafetensorsError(
                "not a safetensors file: its header length \(n) does not fit a file of \(data.count) bytes")
        }
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(n)))
        guard let object = try? JSONSerialization.jsonObject(with: headerBytes), let header = object as? [String: Any]
        else {
            throw SafetensorsError("the header is not a JSON object")
        }
        let body = data.subdata(in: (data.startIndex + 8 + Int(n))..<data.endIndex)
        var metadata: [String: String] = [:]
        var tensors: [String: Tensor<Float>] = [:]
        var ranges: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else {
                    throw SafetensorsError("__metadata__ must map strings to strings")
                }
                metadata = m
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw SafetensorsError("tensor `\(name)`: needs dtype, shape and two data_offsets") }
            guard dtype == "F32" else {
                throw SafetensorsError("tensor `\(name)` has dtype \(dtype); DPKit reads F32 only")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw SafetensorsError("tensor `\(name)` has a negative dimension in \(shape)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            let count = shape.reduce(1, *)
            guard begin >= 0, end >= begin, end <= body.count, end - begin == count * 4 else {
                throw SafetensorsError(
                    "tensor `\(name)`: offsets [\(begin), \(end)] do not hold \(count) F32 values in \(body.count) data bytes"
                )
            }
            ranges.append((begin, end, name))
            var scalars = [Float](repeating: 0, count: count)
            body.withUnsafeBytes { raw in
                for i in 0..<count {
                    scalars[i] = Float(
                        bitPattern: UInt32(
                            littleEndian: raw.loadUnaligned(fromByteOffset: begin + 4 * i, as: UInt32.self)))
                }
            }
            tensors[name] = Tensor(scalars, shape: Shape(shape))
        }
        ranges.sort { $0.0 < $1.0 }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.0 < a.1 {
            throw SafetensorsError("tensors `\(a.2)` and `\(b.2)` overlap in the data section")
        }
        return (tensors, metadata)
    }
}

/// A safetensors file that cannot be read; the message says why.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = "safetensors: " + description }
}
