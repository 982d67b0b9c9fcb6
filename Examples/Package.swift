// swift-tools-version:6.0
// DPKit used as a library, from outside the package: a nested package that depends on the
// root by path, as a user's package would by URL. `make examples` (from the root) builds and
// runs every executable here.
//
//   TrainCustomModel        a hand-built model trained with DP-SGD on generated data
//   AccountCustomMechanism  DPAccounting alone: a custom composition, RDP and PLD, calibration
//   ReadmeProgram           the program of README.md's "Using DPKit as a library"
//   DocSnippets             the other Swift snippets of docs/ and the DocC articles, compiled
//                           (and most of them run)
// A test at the root (Tests/DocumentationTests) keeps every snippet equal to its text.
import PackageDescription

// `.package(path: "..")` takes its identity from the parent folder's name ("main", "wt-onramp",
// or the CI clone's folder), not from the manifest's `name`, so compute it here.
let parentIdentity: String = {
    let parts = Context.packageDirectory.split(separator: "/", omittingEmptySubsequences: true)
    return parts.count >= 2 ? String(parts[parts.count - 2]).lowercased() : "dpkit"
}()

func dpkit(_ product: String) -> Target.Dependency { .product(name: product, package: parentIdentity) }

let package = Package(
    name: "DPKitExamples",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: "..")
    ],
    targets: [
        .executableTarget(
            name: "TrainCustomModel",
            dependencies: [dpkit("DPTensor"), dpkit("DPLayers"), dpkit("DPData"), dpkit("DPTraining")],
            path: "TrainCustomModel"),
        .executableTarget(
            name: "AccountCustomMechanism",
            dependencies: [dpkit("DPAccounting")],
            path: "AccountCustomMechanism"),
        .executableTarget(
            name: "ReadmeProgram",
            dependencies: [dpkit("DPData"), dpkit("DPLayers"), dpkit("DPTraining")],
            path: "ReadmeProgram"),
        .executableTarget(
            name: "DocSnippets",
            dependencies: [
                dpkit("DPTensor"), dpkit("DPLayers"), dpkit("DPData"), dpkit("DPTraining"), dpkit("DPAccounting"),
                dpkit("DPFederated"),
            ],
            path: "DocSnippets"),
    ],
    swiftLanguageModes: [.v5]
)
