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
