/// A feature-extraction error: an input the transform cannot take, or a projection that does not
/// fit the data. Every message names the value and the fix.
public enum FeatureError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The image is smaller than the scattering scale `2^J` in one of its sides.
    case inputTooSmall(height: Int, width: Int, scale: Int)
    /// A transform parameter is out of range.
    case invalidParameter(name: String, value: String, expected: String)
    /// The examples do not have the shape the transform needs.
    case badExampleShape(found: [Int], expected: String)
    /// LAPACK did not converge (its `info` code).
    case eigendecompositionFailed(info: Int)

    public var description: String {
        switch self {
        case .inputTooSmall(let height, let width, let scale):
            return "scattering: the images are \(height)x\(width), smaller than the scale 2^J = \(scale) on one side. "
                + "Fix: lower J to at most log2(min(height, width)), or use larger images."
        case .invalidParameter(let name, let value, let expected):
            return "scattering: \(name) = \(value) is invalid; expected \(expected)."
        case .badExampleShape(let found, let expected):
            return "features: examples of shape \(found) cannot be transformed; expected \(expected)."
        case .eigendecompositionFailed(let info):
            return "PCA: the eigendecomposition did not converge (LAPACK info \(info)). "
                + "Fix: check the data for NaN or infinite values."
        }
    }
}
