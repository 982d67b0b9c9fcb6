import DPLayers
import DPTensor
import Dispatch
import Foundation

// MARK: - Chunks sized for the cache, and processed on every thread

extension DPSGDTrainer {
    /// The bytes a chunk's cached tensors and their gradients aim at: 8 MiB. Measured on the
    /// tanh CNN at batch 256, one thread (BENCHMARKS.md, issue 17): chunks of 16 to 32 examples
    /// (4 to 8 MiB) ran about 1.7x faster than one chunk of 256 (about 60 MiB), whose im2col
    /// columns and activations are written and read back from memory rather than cache.
    public static let chunkWorkingSetBytes = 8 << 20

    /// Examples per chunk for `model` on examples of `exampleShape`: as many as keep the chunk's
    /// input, cached tensors (``Sequential/cachedScalars(forExampleShape:)``) and their
    /// gradients within ``chunkWorkingSetBytes`` (4 bytes per scalar, twice), rounded down to a
    /// multiple of 8, at least 8 and at most `maxPhysicalBatchSize` (the memory cap the user set).
    ///
    /// It depends on the model and the cap only, never on the thread count or the machine, so
    /// the sum of the chunks' clipped gradients, taken in chunk order, has the same bits at
    /// every thread count. The chunks only change how the step is computed: each example is
    /// clipped alone and the noise is added once to the whole sum, so the mechanism and its
    /// accounting do not depend on the chunk size.
    public static func chunkSize(model: Sequential, exampleShape: Shape, maxPhysicalBatchSize: Int) -> Int {
        let scalars = exampleShape.scalarCount + model.cachedScalars(forExampleShape: exampleShape)
        let fitting = chunkWorkingSetBytes / max(1, 8 * scalars)
        return min(maxPhysicalBatchSize, max(8, fitting / 8 * 8))
    }

    /// Why this trainer's chunks cannot run on several threads, or nil. Each thread needs a
    /// replica of the model (rebuilt from its ``Sequential/architecture``), and nothing in a
    /// chunk may depend on the chunks before it: dropout draws its masks from one stream in
    /// chunk order, and adversarial training perturbs the examples with the trainer's model.
    /// Checked before every step (``inputPerturbation`` may be set at any time).
    func refusalOfParallelChunks() -> String? {
        if model.architecture == nil { return "the model was assembled by hand (no architecture to replicate)" }
        if model.layers.contains(where: { $0 is Dropout }) { return "dropout (one mask stream in chunk order)" }
        if inputPerturbation != nil { return "adversarial training" }
        return replicaFailure
    }

    /// How many threads process this step's `chunkCount` chunks: 1 unless the chunks can run
    /// in parallel (``refusalOfParallelChunks()``), else up to the thread count.
    func parallelChunkWorkers(chunkCount: Int) -> Int {
        let threads = BLASRuntime.threadCount
        guard threads > 1, chunkCount > 1, refusalOfParallelChunks() == nil else { return 1 }
        let workers = min(threads, chunkCount)
        while replicaWorkers.count < workers - 1 {
            guard let replica = model.replica() else {
                replicaFailure = "the model rebuilt from its architecture differs from the model trained"
                return 1
            }
            replicaWorkers.append(ChunkWorker(model: replica, batchShape: data.batchShape(0)))
        }
        return workers
    }

    /// Processes the step's chunks on `workers` threads, one model per thread (the trainer's
    /// and replicas that share its parameter values for the step). Threads take the next chunk as they finish one; chunk j's clipped sum goes to
    /// slot j of `chunkSums` and its figures to slot j of `chunkFigures`, exactly as one thread
    /// writes them, so the ordered sum that follows has the same bits.
    func processChunksInParallel(
        workers workerCount: Int, chunkCount: Int, chunk: Int, width: Int, figuresWidth: Int,
        batchIdentity: [Double]
    ) throws {
        let workers = [mainWorker] + replicaWorkers.prefix(workerCount - 1)
        for w in workers.dropFirst() { w.model.shareParameterValues(with: model) }
        // Let go of the shared values afterwards, so that the optimizer updates them in place.
        defer { for w in workers.dropFirst() { w.model.releaseParameterValues() } }
        let failures = ChunkFailures()
        let order = indices
        chunkSums.withUnsafeMutableBufferPointer { sums in
            chunkFigures.withUnsafeMutableBufferPointer { figures in
                ParallelBatch.forEachItem(of: chunkCount, workers: workerCount) { wi, j in
                    let worker = workers[wi]
                    let parameters = worker.model.parameters
                    var stats = ChunkStats(lossSum: 0, correct: 0, clipped: 0, unclipped: 0)
                    for p in parameters { p.gradient.fill(0) }
                    let start = j * chunk, end = min(order.count, start + chunk)
                    worker.start = start
                    worker.indices.removeAll(keepingCapacity: true)
                    worker.indices.append(contentsOf: order[start..<end])
                    // No layer of this model draws from the context (no dropout).
                    var context = ForwardContext(training: true)
                    do {
                        stats = try processChunk(worker, context: &context)
                    } catch let error as TrainingError {
                        stats.error = error
                    } catch {
                        failures.record(error, chunk: j)
                    }
                    var o = j * width
                    for p in parameters {
                        p.gradient.withUnsafeBufferPointer { g in
                            (sums.baseAddress! + o).update(from: g.baseAddress!, count: g.count)
                            o += g.count
                        }
                    }
                    stats.write(into: figures, at: j * figuresWidth, identity: batchIdentity)
                }
            }
        }

        if let error = failures.first { throw error }
    }
}

/// One thread's share of a step: a model (the trainer's own, or a replica) and the buffers of
/// the chunk it is processing.
final class ChunkWorker {
    let model: Sequential
    /// The chunk's examples: positions `start ..< start + indices.count` of the batch.
    var start = 0
    var indices: [Int] = []
    var batch: Tensor<Float>
    /// The other half of a double buffer: the layers keep the previous chunk's input cached,
    /// so gathering into it would copy it first (copy-on-write); alternating avoids that copy.
    var spareBatch: Tensor<Float>
    var labels: [Int] = []
    var norms = Tensor<Float>(zeros: [0])
    var weights = Tensor<Float>(zeros: [0])
    var perLayerWeights: [Tensor<Float>] = []

    init(model: Sequential, batchShape: Shape) {
        self.model = model
        batch = Tensor(zeros: batchShape)
        spareBatch = Tensor(zeros: batchShape)
    }
}

/// Errors other than the chunk figures carry, by chunk; the first chunk's is rethrown.
final class ChunkFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [(chunk: Int, error: any Error)] = []

    func record(_ error: any Error, chunk: Int) {
        lock.lock()
        errors.append((chunk, error))
        lock.unlock()
    }

    var first: (any Error)? { errors.min { $0.chunk < $1.chunk }?.error }
}
