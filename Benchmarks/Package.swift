// swift-tools-version:6.1
// DPKit's benchmark suites, in a nested package so that `swift test` at the root never builds
// the harness. Run from the repository root: `make bench-suites`
// (= cd Benchmarks && swift package --allow-writing-to-package-directory benchmark).
import PackageDescription

let suites = ["Kernels", "Accounting", "DPSGD"]

let package = Package(
    name: "DPKitBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: suites.map { suite in
        .executableTarget(
            name: suite,
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "DPTensor", package: "DPKit"),
                .product(name: "DPLayers", package: "DPKit"),
                .product(name: "DPTraining", package: "DPKit"),
                .product(name: "DPAccounting", package: "DPKit"),
            ],
            path: suite,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")])
    },
    swiftLanguageModes: [.v5]
)
