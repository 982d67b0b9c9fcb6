/// A configuration error: names the file, the key path, the bad value and what is allowed.
///
/// `description` reads like `quickstart.yaml:12: privacy.noise_multiplier: -1 is out of range; allowed: >= 0`.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The config file as given by the user (or `<string>` for text parsed in memory).
    public var file: String
    /// The dotted key path (`privacy.noise_multiplier`), or empty for the whole file.
    public var path: String
    /// The 1-based line of the key in the file, when known.
    public var line: Int?
    /// What is wrong and what is allowed.
    public var message: String
    /// Whether the error is an unknown key (used to re-word errors for unknown sweep key paths).
    var isUnknownKey = false

    public init(file: String, path: String, line: Int? = nil, message: String) {
        self.file = file
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
func closestMatch(to word: String, in candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    let limit = max(2, word.count * 2 / 5 + 1)
    if best.1 <= limit { return best.0 }
    // A key that contains a candidate, or is contained in one (`noise` for `noise_multiplier`).
    return candidates.first { $0.contains(word) || word.contains($0) }
}

/// Levenshtein distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
