import DPTensor

/// The output size of a pooling window sweep without padding: `(n - kernel) / stride + 1`.
@inlinable
func pooledSize(_ n: Int, kernel: Int, stride: Int) -> Int {
    n >= kernel ? (n - kernel) / stride + 1 : 0
}

/// Checks an NCHW input and returns its dimensions.
func nchw(_ x: Shape, _ layer: String) -> (b: Int, c: Int, h: Int, w: Int) {
    precondition(x.rank == 4, "\(layer): input \(x) should be [B, C, H, W]")
    return (x[0], x[1], x[2], x[3])
}

/// The kernel and stride of a pooling layer, checked: `stride` defaults to `kernel`.
func poolingWindow(kernel: Int, stride: Int?, layer: String) -> (kernel: Int, stride: Int) {
    let s = stride ?? kernel
    precondition(kernel > 0 && s > 0, "\(layer): kernel \(kernel) and stride \(s) must be positive")
    return (kernel, s)
}

/// The pooled shape `[C, H', W']` of one `[C, H, W]` example.
func pooledExampleShape(_ s: Shape, kernel: Int, stride: Int, layer: String) -> Shape {
    precondition(s.rank == 3, "\(layer): example shape \(s) should be [C, H, W]")
    return [s[0], pooledSize(s[1], kernel: kernel, stride: stride), pooledSize(s[2], kernel: kernel, stride: stride)]
}
