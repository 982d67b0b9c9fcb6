import DPTensor

// MARK: - The slow per-sample gradient reference (tests and benchmarks only)

/// A layer that can materialise its per-example gradients: the slow, obviously correct twin
/// of ``Layer/addPerSampleGradientSquaredNorms(into:)`` and
/// ``Layer/accumulateGradients(exampleWeights:)``.
///
/// Not part of DPKit's public API (training never calls it, and a new layer need not provide
/// it): it is SPI, reached with `@_spi(Testing) import DPLayers` by the layer tests, which
/// compare the fast path against it, and by the DPSGD benchmark suite, which times the fast
/// path against it in release builds (where `@testable import` is not available).
@_spi(Testing)
public protocol PerSampleGradientReference: Layer {
    /// The gradient of each parameter for each example of the cached batch, as
    /// `[B] + parameter.shape`, in the order of ``Layer/parameters``.
    ///
    /// Call after ``Layer/backward(_:)``.
    func referencePerSampleGradients() -> [Tensor<Float>]
}

@_spi(Testing)
extension Layer {
    /// The per-example gradients of this layer's parameters, `[B] + parameter.shape` each,
    /// from ``PerSampleGradientReference/referencePerSampleGradients()``; empty for a layer
    /// without parameters.
    ///
    /// - Precondition: the layer has no parameters or conforms to ``PerSampleGradientReference``.
    public func perSampleGradients() -> [Tensor<Float>] {
        if let reference = self as? any PerSampleGradientReference { return reference.referencePerSampleGradients() }
        precondition(
            parameters.isEmpty,
            "\(description) has parameters but no per-sample gradient reference (PerSampleGradientReference)")
        return []
    }
}

@_spi(Testing) extension Linear: PerSampleGradientReference {}
@_spi(Testing) extension Conv2d: PerSampleGradientReference {}
@_spi(Testing) extension GroupNorm: PerSampleGradientReference {}
@_spi(Testing) extension LayerNorm: PerSampleGradientReference {}
@_spi(Testing) extension Sequential: PerSampleGradientReference {}
