import DPTensor

/// A chain of layers, itself a ``Layer``: forward in order, backward in reverse, and the
/// per-sample gradient phases forwarded to every layer.
///
/// Per-layer clipping uses ``trainableLayers`` (the layers with parameters, in order):
/// ``perLayerSquaredNorms()`` and ``accumulateGradients(perLayerWeights:)`` are aligned with it.
public final class Sequential: Layer {
    public let layers: [any Layer]
    /// The batch size of the last forward pass.
    public private(set) var batchSize = 0

    /// The specs and input shape this model was built from (set by ``ModelBuilder``), so an
    /// exported model can be rebuilt without its config; nil for hand-assembled models.
    public var architecture: ModelArchitecture?

    public init(_ layers: [any Layer]) {
        self.layers = layers
    }

    /// Whether ``backward(_:)`` returns the gradient w.r.t. the model input (default `true`).
    /// Forwarded to the leading layers up to and including the first one with parameters: a
    /// trainer that discards the input gradient sets this to `false`, and the first
    /// convolution or dense layer on the data skips computing it; ``backward(_:)`` then returns
    /// zeros of the input's shape.
    public var needsInputGradient: Bool {
        get { layers.first?.needsInputGradient ?? true }
        set {
            for layer in layers {
                layer.needsInputGradient = newValue
                if !layer.parameters.isEmpty { break }
            }
        }
    }

    public convenience init(_ layers: any Layer...) { self.init(layers) }

    public var description: String {
        "Sequential(" + layers.map(\.description).joined(separator: ", ") + ")"
    }

    /// Every layer's parameters, in layer order.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// The layers that have parameters, in order: the unit of per-layer clipping.
    public var trainableLayers: [any Layer] { layers.filter { !$0.parameters.isEmpty } }

    public func outputShape(forExampleShape inputShape: Shape) -> Shape {
        layers.reduce(inputShape) { $1.outputShape(forExampleShape: $0) }
    }

    /// Every layer's cached scalars (``Layer/cachedScalars(forExampleShape:)``) for one
    /// example: what a batch holds per example between the forward pass and the per-sample
    /// phases, besides its input and the gradients of the same size.
    public func cachedScalars(forExampleShape inputShape: Shape) -> Int {
        var shape = inputShape, total = 0
        for layer in layers {
            total += layer.cachedScalars(forExampleShape: shape)
            shape = layer.outputShape(forExampleShape: shape)
        }
        return total
    }

    // MARK: - Forward and backward

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        precondition(x.rank >= 1, "Sequential: input needs a batch axis, got \(x.shape)")
        batchSize = x.shape[0]
        var h = x
        for layer in layers { h = layer.forward(h, context: &context) }
        return h
    }

    /// Forward in evaluation mode (dropout off).
    public func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
        var context = ForwardContext(training: false)
        return forward(x, context: &context)
    }

    /// Backpropagates the gradient of the summed loss w.r.t. the output; every layer caches
    /// its output gradient, no parameter gradient is formed.
    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        var g = dy
        for layer in layers.reversed() { g = layer.backward(g) }
        return g
    }

    // MARK: - Per-sample gradients

    public func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>) {
        for layer in layers { layer.addPerSampleGradientSquaredNorms(into: &norms) }
    }

    /// Each example's squared gradient norm over all parameters, `[batchSize]`.
    public func perSampleGradientSquaredNorms() -> Tensor<Float> {
        perSampleGradientSquaredNorms(batchSize: batchSize)
    }

    /// Each trainable layer's per-sample squared gradient norms (`[batchSize]` each), aligned
    /// with ``trainableLayers``: for per-layer clipping.
    public func perLayerSquaredNorms() -> [Tensor<Float>] {
        trainableLayers.map { $0.perSampleGradientSquaredNorms(batchSize: batchSize) }
    }

    /// Adds `sum_i w_i g_i` to every parameter's gradient (`nil`: all weights one).
    public func accumulateGradients(exampleWeights: Tensor<Float>?) {
        for layer in layers { layer.accumulateGradients(exampleWeights: exampleWeights) }
    }

    /// Per-layer clipping: trainable layer `k` adds `sum_i w_{k,i} g_{k,i}` with its own
    /// weights (`nil`: all ones). Aligned with ``trainableLayers``.
    public func accumulateGradients(perLayerWeights: [Tensor<Float>?]) {
        let trainable = trainableLayers
        precondition(
            perLayerWeights.count == trainable.count,
            "Sequential.accumulateGradients: \(perLayerWeights.count) weight vectors for \(trainable.count) trainable layers"
        )
        for (layer, w) in zip(trainable, perLayerWeights) { layer.accumulateGradients(exampleWeights: w) }
    }

    @_spi(Testing) public func referencePerSampleGradients() -> [Tensor<Float>] {
        layers.flatMap { $0.perSampleGradients() }
    }

    /// Sets every parameter's gradient to zero.
    public func zeroGradients() {
        for p in parameters { p.gradient.fill(0) }
    }

    // MARK: - Evaluation

    /// The predicted class (arg-max logit) of each example, in evaluation mode, `batchSize`
    /// examples at a time. Overwrites the layers' caches.
    public func predict(_ inputs: Tensor<Float>, batchSize chunk: Int = 512) -> [Int] {
        precondition(chunk > 0, "Sequential.predict: batch size \(chunk) must be positive")
        let n = inputs.shape[0]
        var predictions: [Int] = []
        predictions.reserveCapacity(n)
        var start = 0
        while start < n {
            let end = min(n, start + chunk)
            predictions += self(inputs.rows(start..<end)).argmaxRows()
            start = end
        }
        return predictions
    }

    /// The fraction of examples whose predicted class equals the label; NaN for no examples.
    public func accuracy(_ inputs: Tensor<Float>, labels: [Int], batchSize chunk: Int = 512) -> Double {
        precondition(
            labels.count == inputs.shape[0],
            "Sequential.accuracy: \(labels.count) labels for \(inputs.shape[0]) examples")
        if labels.isEmpty { return .nan }
        let correct = zip(predict(inputs, batchSize: chunk), labels).filter { $0 == $1 }.count
        return Double(correct) / Double(labels.count)
    }
}
