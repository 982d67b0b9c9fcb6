import DPData
import DPLayers
@_exported import DPSchema
import DPTraining

/// Every registry the config validator consults, assembled from the modules that own the
/// names: datasets from DPData, models and layer types from DPLayers, samplers, clipping
/// modes, accountants, optimizers and schedules from DPTraining.
///
/// Adding a dataset or a model is one registration in its module's registry (or
/// `registries.datasets.register(...)` / `registries.models.register(...)` at run time); the
/// config validator then accepts the name and checks its options, and the executor builds it
/// through the same registry.
public struct PluginRegistries: Sendable {
    public var datasets: DatasetRegistry
    public var models: ModelRegistry
    public var layers: LayerRegistry
    public var optimizers: PluginRegistry
    public var schedules: PluginRegistry
    public var clippingModes: PluginRegistry { ClippingMode.schema }
    public var accountants: PluginRegistry { AccountantKind.schema }
    public var samplers: PluginRegistry { SamplingScheme.schema }

    public init(
        datasets: DatasetRegistry, models: ModelRegistry, layers: LayerRegistry,
        optimizers: PluginRegistry, schedules: PluginRegistry
    ) {
        self.datasets = datasets
        self.models = models
        self.layers = layers
        self.optimizers = optimizers
        self.schedules = schedules
    }

    /// The plugins DPKit ships.
    public static let standard = PluginRegistries(
        datasets: .standard, models: .standard, layers: .standard,
        optimizers: OptimizerKind.schema, schedules: LearningRateSchedule.schema)
}

// MARK: - Reference

extension PluginRegistries {
    /// Every registry as (title, registry), in the order of the config file.
    public var all: [(title: String, registry: PluginRegistry)] {
        [
            ("Datasets (`dataset.name`, options in `dataset.options`)", datasets.schema),
            ("Models (`model.name`, options in `model.options`)", models.schema),
            ("Layer types (`model.layers[].type`, parameters beside `type`)", layers.schema),
            ("Optimizers (`optimizer.name`, parameters beside `name`)", optimizers),
            ("Learning-rate schedules (`optimizer.schedule.name`, options in `optimizer.schedule.options`)", schedules),
            ("Clipping modes (`privacy.clipping`, options in `privacy.clipping_options`)", clippingModes),
            ("Accountants (`privacy.accountant`, `accounting.accountant`)", accountants),
            ("Sampling methods (`privacy.sampling`)", samplers),
        ]
    }

    /// A markdown reference of every plugin and parameter (pasted into docs/experiments.md).
    public func referenceMarkdown() -> String {
        var out = ""
        for (title, registry) in all {
            out += "#### \(title)\n\n| name | parameters | description |\n|---|---|---|\n"
            for plugin in registry.plugins {
                let parameters = plugin.parameters.map { p -> String in
                    var text = "`\(p.name)`: \(p.allowedDescription)"
                    if let d = p.defaultValue { text += ", default `\(d.displayText)`" }
                    if p.required { text += ", required" }
                    if !p.summary.isEmpty { text += " (\(p.summary))" }
                    return text
                }
                let description = plugin.summary + (plugin.requiresPath ? "; requires `dataset.path`" : "")
                out +=
                    "| `\(plugin.name)` | \(parameters.isEmpty ? "–" : parameters.joined(separator: "; ")) | \(description) |\n"
            }
            for (name, reason) in registry.refused.sorted(by: { $0.key < $1.key }) {
                out += "| `\(name)` | refused | \(reason) |\n"
            }
            out += "\n"
        }
        return out
    }
}
