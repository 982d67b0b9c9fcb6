extension String {
    /// This string with every Unicode scalar for which `replacement` gives a string replaced by
    /// that string, and the others kept: the one loop behind JSON string quoting
    /// (``ConfigValue/jsonQuoted(_:)``) and the SVG text escaping of DPExperiments.
    package func replacingScalars(_ replacement: (Unicode.Scalar) -> String?) -> String {
        var out = ""
        for scalar in unicodeScalars {
            if let text = replacement(scalar) { out += text } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}
