import DPTensor

extension Sequential {
    /// A copy of this model for another thread: the same layers rebuilt by ``ModelBuilder``
    /// from ``architecture``, with their own caches and gradients, and parameter values that
    /// share this model's storage (copy-on-write) until either side writes them. Nil for a model
    /// assembled by hand (no architecture), or when the rebuilt layers differ from this model's
    /// (their descriptions name every setting) or their parameters differ in shape.
    ///
    /// Call ``shareParameterValues(with:)`` before each use: the replica does not follow this
    /// model's updates by itself.
    public func replica() -> Sequential? {
        guard let architecture,
            let copy = try? ModelBuilder.build(
                specs: architecture.specs, inputShape: Shape(architecture.inputShape), seed: 0),
            copy.description == description,
            copy.parameters.map(\.value.shape) == parameters.map(\.value.shape)
        else { return nil }
        copy.needsInputGradient = needsInputGradient
        copy.shareParameterValues(with: self)
        return copy
    }

    /// Points every parameter's value at `source`'s (no copy), and takes its input-gradient setting.
    public func shareParameterValues(with source: Sequential) {
        for (p, q) in zip(parameters, source.parameters) { p.value = q.value }
        needsInputGradient = source.needsInputGradient
    }

    /// Lets go of the shared values (empty tensors until the next ``shareParameterValues(with:)``),
    /// so that the source's next in-place update does not copy them.
    public func releaseParameterValues() {
        for p in parameters { p.value = Sequential.releasedValue }
    }

    static let releasedValue = Tensor<Float>(zeros: [0])
}
