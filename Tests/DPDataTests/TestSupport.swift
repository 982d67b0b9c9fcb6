import DPTensor
import Foundation
import Testing

@testable import DPData

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "dpdata-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ bytes: [UInt8], to name: String) throws { try FileBytes.write(bytes, to: file(name)) }

    func write(_ text: String, to name: String) throws { try write(Array(text.utf8), to: name) }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// A small IDX image/label pair: `n` images of `rows` x `columns` with pixel `(k * 7) % 256`
/// at flat index `k`, labels `i % classes`.
func smallIDXPair(n: Int, rows: Int = 4, columns: Int = 3, classes: Int = 10) -> (images: IDX, labels: IDX) {
    let pixels = (0..<(n * rows * columns)).map { UInt8(($0 * 7) % 256) }
    return (
        IDX(dimensions: [n, rows, columns], bytes: pixels),
        IDX(dimensions: [n], bytes: (0..<n).map { UInt8($0 % classes) })
    )
}

/// The error a throwing call raised, as a `DataError` (nil if none or another type).
func dataError(_ body: () throws -> Void) -> DataError? {
    do {
        try body()
        return nil
    } catch let e as DataError { return e } catch { return nil }
}
