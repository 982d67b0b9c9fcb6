import DPTensor

/// A trainable tensor and its gradient. Optimizers update `value` from `gradient`.
public final class Parameter {
    public let name: String
    public var value: Tensor<Float>
    /// The gradient accumulated by ``Layer/accumulateGradients(exampleWeights:)``: the
    /// (weighted) sum over examples, not the mean.
    public var gradient: Tensor<Float>

    public init(name: String, value: Tensor<Float>) {
        self.name = name
        self.value = value
        self.gradient = Tensor(zeros: value.shape)
    }

    public var scalarCount: Int { value.scalarCount }
}

/// What a forward pass needs besides its input.
public struct ForwardContext {
    /// Training mode (dropout active) or evaluation mode.
    public var training: Bool
    /// The random stream for dropout masks (per-example, so no example's mask depends on another's).
    public var rng: PhiloxRandom

    public init(training: Bool, rng: PhiloxRandom = PhiloxRandom(seed: 0)) {
        self.training = training
        self.rng = rng
    }
}

/// A layer with forward, backward and per-sample gradient rules.
///
/// DP-SGD with one backward pass ("book-keeping", Bu et al. 2022) uses a layer as follows:
/// 1. ``forward(_:context:)`` on a batch `[B, ...]`, caching what backward needs;
/// 2. ``backward(_:)`` with the gradient of the summed loss w.r.t. the output; it returns the
///    gradient w.r.t. the input and caches the output gradient, but does not form parameter
///    gradients;
/// 3. ``addPerSampleGradientSquaredNorms(into:)`` adds each example's squared gradient norm
///    for this layer's parameters to `norms` (`[B]`), by the cheapest rule for the layer's
///    shape (ghost norm or materialised per-example gradients);
/// 4. ``accumulateGradients(exampleWeights:)`` adds `sum_i w_i g_i` to each parameter's
///    gradient (one GEMM over the batch for Linear/Conv2d); `nil` weights mean all ones
///    (non-private training).
///
/// Layers that mix examples (BatchNorm) must not conform: they break per-example privacy.
public protocol Layer: AnyObject {
    /// A short description, for example "Linear(784->10)".
    var description: String { get }
    /// The trainable parameters (empty for activations and pooling).
    var parameters: [Parameter] { get }
    /// The output shape for one example of shape `inputShape` (without the batch axis).
    func outputShape(forExampleShape inputShape: Shape) -> Shape
    func forward(_ input: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float>
    func backward(_ outputGradient: Tensor<Float>) -> Tensor<Float>
    /// Whether ``backward(_:)`` must compute the gradient w.r.t. the input (default `true`).
    ///
    /// When `false` the layer still caches what the per-sample phases need, but may skip the
    /// input gradient and return zeros of the input's shape instead: a model's first layer,
    /// whose input is data, needs no input gradient (for a convolution that saves the
    /// `W^T dY` GEMM and the col2im). Layers that cannot skip anything ignore it.
    var needsInputGradient: Bool { get set }
    func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>)
    func accumulateGradients(exampleWeights: Tensor<Float>?)
    /// The scalars one example of shape `inputShape` occupies in what the layer keeps between
    /// its forward pass and the per-sample phases: its output, plus a convolution's im2col
    /// columns (default: the output). The trainer sizes its chunks from the sum over a model's
    /// layers, so that a chunk's tensors stay in cache (``Sequential/cachedScalars(forExampleShape:)``).
    func cachedScalars(forExampleShape inputShape: Shape) -> Int
}
