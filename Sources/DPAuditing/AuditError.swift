/// An audit or attack that cannot give a sound answer for the input it was handed.
///
/// Each message names the value at fault and the fix. An audit never reports a bound it cannot
/// justify: when the inputs would make the bound unsound (a confidence outside (0, 1), more
/// canaries than examples, a threshold chosen on the data it is scored on), it throws instead.
public struct AuditError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
