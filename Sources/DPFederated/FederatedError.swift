/// A federated setting, partition or protocol step that cannot run as asked.
///
/// Each message names the value at fault and the fix. Privacy-relevant refusals (a weighting or
/// sampler the accountant cannot model, secure aggregation below its threshold) are errors,
/// never warnings.
public struct FederatedError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
