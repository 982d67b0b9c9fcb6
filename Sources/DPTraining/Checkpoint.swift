import DPAccounting
import DPLayers
import DPTensor
import Foundation

/// Model, optimizer state, random-stream positions and privacy ledger, saved together so that
/// a resumed run continues exactly where it stopped and the ledger is never reset or counted
/// twice (the ledger in the checkpoint is the one the resumed trainer composes onto).
public struct Checkpoint: Codable {
    public static let formatVersion = 1
    public var formatVersion = Checkpoint.formatVersion
    public var step: Int
    public var clippingNorm: Double
    /// Parameter values in model order, as little-endian Float32 bytes (base64 in JSON).
    public var parameters: [Data]
    public var parameterShapes: [[Int]]
    public var optimizer: OptimizerState
    public var sampler: PhiloxRandom.State
    public var noise: PhiloxRandom.State
    public var dropout: PhiloxRandom.State
    public var ledger: PrivacyLedger

    /// JSON coders that keep an infinite clipping norm (non-private runs) as `"inf"`.
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }
    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// Writes atomically (temporary file, then rename): a kill never leaves half a checkpoint.
    public func write(to url: URL) throws {
        let data = try Checkpoint.encoder.encode(self)
        try data.write(to: url, options: .atomic)
    }

    public static func read(from url: URL) throws -> Checkpoint {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainingError.checkpoint("cannot read \(url.path): \(error.localizedDescription)")
        }
        let c: Checkpoint
        do { c = try Checkpoint.decoder.decode(Checkpoint.self, from: data) } catch {
            throw TrainingError.checkpoint(
                "\(url.path) is not a DPKit checkpoint or is corrupt (\(error)); delete it to start the run afresh")
        }
        guard c.formatVersion == Checkpoint.formatVersion else {
            throw TrainingError.checkpoint(
                "\(url.path) has format version \(c.formatVersion); this DPKit reads version \(Checkpoint.formatVersion)"
            )
        }
        return c
    }
}

extension DPSGDTrainer {
    /// The trainer's full state.
    public func checkpoint() -> Checkpoint {
        Checkpoint(
            step: step, clippingNorm: clippingNorm,
            parameters: model.parameters.map { p in p.value.withUnsafeBufferPointer { Data(buffer: $0) } },
            parameterShapes: model.parameters.map { $0.value.shape.array },
            optimizer: optimizer.state, sampler: sampler.rng.state, noise: noiseRandom.state,
            dropout: dropoutRandom.state, ledger: ledger)
    }

    /// Restores a state saved by ``checkpoint()`` into this trainer (same model architecture).
    public func restore(_ c: Checkpoint) throws {
        let params = model.parameters
        guard c.parameters.count == params.count,
            zip(c.parameterShapes, params).allSatisfy({ $0.0 == $0.1.value.shape.array })
        else {
            throw TrainingError.checkpoint(
                "the checkpoint's parameter shapes \(c.parameterShapes) do not match the model's \(params.map { $0.value.shape.array })"
            )
        }
        for (p, bytes) in zip(params, c.parameters) {
            guard bytes.count == p.scalarCount * MemoryLayout<Float>.stride else {
                throw TrainingError.checkpoint(
                    "parameter \(p.name) has \(bytes.count) bytes, expected \(p.scalarCount * 4)")
            }
            p.value.withUnsafeMutableBufferPointer { dst in _ = bytes.copyBytes(to: dst) }
        }
        optimizer.state = c.optimizer
        restoreState(
            step: c.step, clippingNorm: c.clippingNorm, sampler: PhiloxRandom(state: c.sampler),
            noise: PhiloxRandom(state: c.noise), dropout: PhiloxRandom(state: c.dropout), ledger: c.ledger)
        try recomputeBudget()
    }
}
