/// LaTeX text for tables: escaping and the packages a table needs.
public enum LaTeX {
    /// Symbols that LaTeX typesets in math mode; Greek letters are not text characters in the
    /// default fonts. `ε` is `\varepsilon`, as in the DP literature.
    static let mathSymbols: [Character: String] = [
        "α": "\\alpha", "β": "\\beta", "γ": "\\gamma", "δ": "\\delta", "ε": "\\varepsilon", "ζ": "\\zeta",
        "η": "\\eta", "θ": "\\theta", "ι": "\\iota", "κ": "\\kappa", "λ": "\\lambda", "μ": "\\mu", "ν": "\\nu",
        "ξ": "\\xi", "π": "\\pi", "ρ": "\\rho", "σ": "\\sigma", "τ": "\\tau", "υ": "\\upsilon", "φ": "\\varphi",
        "χ": "\\chi", "ψ": "\\psi", "ω": "\\omega",
        "Γ": "\\Gamma", "Δ": "\\Delta", "Θ": "\\Theta", "Λ": "\\Lambda", "Ξ": "\\Xi", "Π": "\\Pi", "Σ": "\\Sigma",
        "Φ": "\\Phi", "Ψ": "\\Psi", "Ω": "\\Omega",
        "±": "\\pm", "∞": "\\infty", "≤": "\\leq", "≥": "\\geq", "×": "\\times", "→": "\\rightarrow", "−": "-",
    ]

    /// Text as LaTeX: the ten special characters escaped (`\` `{` `}` `$` `&` `#` `%` `_` `~` `^`),
    /// `<`, `>` and `|` as text symbols (OT1 fonts would print `¡`, `¿` and `—`), Greek letters
    /// and `± ∞ ≤ ≥ × →` in math mode, `…` as `\ldots`, `–` as `--`. Other characters stay as they are (UTF-8).
    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "\\": out += "\\textbackslash{}"
            case "{", "}", "$", "&", "#", "%", "_": out += "\\" + String(c)
            case "~": out += "\\textasciitilde{}"
            case "^": out += "\\textasciicircum{}"
            case "<": out += "\\textless{}"
            case ">": out += "\\textgreater{}"
            case "|": out += "\\textbar{}"
            case "…": out += "\\ldots{}"
            case "–": out += "--"
            default:
                if let symbol = mathSymbols[c] { out += "$\(symbol)$" } else { out.append(c) }
            }
        }
        return out
    }

    /// The lines of a table, headed by comments naming what the preamble needs: booktabs for the
    /// rules, and UTF-8 input when a character outside ASCII is left (a model name, a label).
    /// Everything else used (`\mathbf`, `\scriptsize`, `\varepsilon`, `\pm`, `\infty`, the
    /// `\text...` symbols) is in the LaTeX kernel.
    static func document(_ lines: [String]) -> String {
        let body = lines.joined(separator: "\n") + "\n"
        var header = ["% requires \\usepackage{booktabs}"]
        if body.unicodeScalars.contains(where: { $0.value > 0x7F }) {
            header.append(
                "% requires UTF-8 input: the default since LaTeX 2018-04; before, \\usepackage[utf8]{inputenc}")
        }
        return header.joined(separator: "\n") + "\n" + body
    }
}
