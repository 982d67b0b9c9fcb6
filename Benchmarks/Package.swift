// swift-tools-version:6.1
// DPKit's benchmark suites on ordo-one/benchmark, in a nested package so that `swift test` at
// the root never builds them. From this folder (the root Makefile's `make bench-suites`):
//
//     swift package benchmark                      # run every suite, print the figures
//     swift package benchmark thresholds check     # run, and compare with Thresholds/
//     swift package benchmark --target Kernels     # one suite
//
// ordo-one/benchmark 1.38.1 resolves from the machine's package mirror only with the
// "MallocInterposer" trait alone: its default traits also enable "RuntimeInterposer", which on
// Linux with Swift 6.3 pulls ordo-one/swift-runtime-interposer, a package the mirror does not
// hold. Its BenchmarkPlugin generates each suite's `main` and `swift package benchmark` runs
// it (BenchmarkCommandPlugin); a suite is an executable target whose folder is in Benchmarks/.
//
// `Paired` is the one piece of our own: it times two sides alternately and reports the median
// of the per-pair ratios, which the library cannot do itself (see Paired/Paired.swift).
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
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(
            name: "Paired",
            dependencies: [.product(name: "Benchmark", package: "benchmark")],
            path: "Paired")
    ]
        + suites.map { suite in
            .executableTarget(
                name: suite,
                dependencies: [
                    "Paired",
                    .product(name: "Benchmark", package: "benchmark"),
                    .product(name: "DPTensor", package: parentIdentity),
                    .product(name: "DPLayers", package: parentIdentity),
                    .product(name: "DPTraining", package: parentIdentity),
                    .product(name: "DPAccounting", package: parentIdentity),
                ]
                    + (suite == "DPSGD"
                        ? [
                            .product(name: "DPData", package: parentIdentity),
                            .product(name: "DPBenchmarking", package: parentIdentity),
                        ] : []),
                path: suite,
                plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")])
        },
    swiftLanguageModes: [.v5]
)
