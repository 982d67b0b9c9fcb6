// swift-tools-version:6.1
// DPKit's benchmark suites, in a nested package so that `swift test` at the root never builds
// them. Run one suite from this folder, in release mode, checking its thresholds:
//
//     cd Benchmarks && swift run -c release Kernels --check Kernels/thresholds.json
//
// Harness: a small one of our own (`Harness/`: warm-up, median of N, checked-in thresholds).
// ordo-one/benchmark 1.38.1 (the only tag on the local mirror) needs
// ordo-one/swift-runtime-interposer on Linux with Swift 6.3, which the mirror does not hold.
import PackageDescription

// `.package(path: "..")` takes its identity from the parent folder's name ("main", "tensor",
// or the CI clone's folder), not from the manifest's `name`, so compute it here.
let parentIdentity: String = {
    let parts = Context.packageDirectory.split(separator: "/", omittingEmptySubsequences: true)
    return parts.count >= 2 ? String(parts[parts.count - 2]).lowercased() : "dpkit"
}()

let suites = ["Kernels", "Accounting", "DPSGD"]

let package = Package(
    name: "DPKitBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        .target(name: "Harness", path: "Harness"),
    ] + suites.map { suite in
        .executableTarget(
            name: suite,
            dependencies: [
                "Harness",
                .product(name: "DPTensor", package: parentIdentity),
                .product(name: "DPLayers", package: parentIdentity),
                .product(name: "DPTraining", package: parentIdentity),
                .product(name: "DPAccounting", package: parentIdentity),
            ] + (suite == "DPSGD" ? [.product(name: "DPData", package: parentIdentity)] : []),
            path: suite,
            exclude: suite == "Kernels" ? ["thresholds.json", "thresholds-epyc-zen4.json"]
                : ["thresholds.json"])
    },
    swiftLanguageModes: [.v5]
)
