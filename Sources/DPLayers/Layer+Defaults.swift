import DPTensor

// MARK: - Layers without parameters

/// A layer with no trainable parameters (activations, pooling, reshapes, dropout).
///
/// It contributes nothing to per-sample gradient norms and accumulates nothing; conforming
/// to this protocol, rather than leaving those requirements empty by hand, makes that
/// explicit, and a layer with parameters cannot pick up these empty defaults by accident.
public protocol ParameterFreeLayer: Layer {}

extension ParameterFreeLayer {
    public var parameters: [Parameter] { [] }
    public func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>) {}
    public func accumulateGradients(exampleWeights: Tensor<Float>?) {}
}

// MARK: - Input gradient

extension Layer {
    /// Layers that always compute their input gradient: reading gives `true`, setting is ignored.
    public var needsInputGradient: Bool {
        get { true }
        set {}
    }
}

// MARK: - Working set

extension Layer {
    /// The output alone: what most layers keep for the backward pass.
    public func cachedScalars(forExampleShape inputShape: Shape) -> Int {
        outputShape(forExampleShape: inputShape).scalarCount
    }
}

// MARK: - Helpers for per-layer clipping

extension Layer {
    /// This layer's per-sample squared gradient norms alone, as `[batchSize]`: what per-layer
    /// clipping compares against the layer's own threshold.
    ///
    /// Call after ``Layer/backward(_:)`` on a batch of `batchSize` examples.
    public func perSampleGradientSquaredNorms(batchSize: Int) -> Tensor<Float> {
        var norms = Tensor<Float>(zeros: [batchSize])
        addPerSampleGradientSquaredNorms(into: &norms)
        return norms
    }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.scalarCount } }
}

/// Checks that `weights` (if any) holds one weight per example.
@inlinable
func checkExampleWeights(_ weights: Tensor<Float>?, batchSize: Int, layer: String) {
    if let w = weights {
        precondition(
            w.scalarCount == batchSize,
            "\(layer).accumulateGradients: \(w.scalarCount) example weights for a batch of \(batchSize)")
    }
}

/// Checks that `norms` holds one entry per example.
@inlinable
func checkNorms(_ norms: Tensor<Float>, batchSize: Int, layer: String) {
    precondition(
        norms.scalarCount == batchSize,
        "\(layer).addPerSampleGradientSquaredNorms: norms \(norms.shape) for a batch of \(batchSize)")
}
