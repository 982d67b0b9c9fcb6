// swift-tools-version:6.0
// DPKit: differential-privacy research framework.
//
// Modules follow the direction of dependency:
//   CBLAS, CLAPACKE  (system libraries, imported by DPTensor only)
//   CFFTW            (system library, double and single precision; imported by DPAccounting and DPFeatures)
//   CZlib            (system library, imported by DPData only)
//   CDPKernels       C kernels (normal sampling), imported by DPTensor only
//   CMPI             (system library, only with DPKIT_MPI set: `make mpi`), imported by DPMPI only
//   DPSchema         config values and plugin parameter schemas (depends on nothing)
//   DPTensor         tensor kernel, BLAS/LAPACK, random numbers
//   DPAccounting     privacy events and accountants (depends on nothing else in DPKit)
//   DPLayers         layers with per-sample gradient rules
//   DPCrypto         envelope encryption (AES-256-GCM, RSA-OAEP, scrypt) and Ed25519 signatures
//                    of result folders, all from swift-crypto (depends on nothing else in DPKit)
//   DPData           datasets: IDX (Fashion-MNIST), CSV, synthetic
//   DPFeatures       fixed feature extractors: the 2-D scattering transform (ScatterNet, on FFTW)
//   DPTraining       DP-SGD: sampling, clipping, noise, optimizers, privacy engine
//   DPAuditing       attacks on privacy and empirical epsilon lower bounds: membership inference,
//                    canaries, gradient inversion (tests what DPAccounting claims)
//   DPFederated      federated learning: client partitions, FedAvg/FedAvgM/FedAdam, user-level
//                    DP-FedAvg with adaptive clipping, robust aggregation, poisoning clients,
//                    secure aggregation (X25519, HKDF, AES-CTR from swift-crypto; Shamir shares)
//   DPFederatedNetwork  the federated server and clients as separate processes over TLS
//                    (swift-nio, swift-nio-ssl; `dpkit federated server|client`)
//   DPExperiments    configs, sweeps, CSV logs, tables, plots
//   DPMPI            MPI ranks for data-parallel DP-SGD (MPI itself only in `make mpi` builds)
//   DPBenchmarking   timed training steps of named workloads (`dpkit bench`, Benchmarks/DPSGD) and
//                    envelope throughput (`dpkit bench-encryption`)
//   dpkit            thin command-line tool
import PackageDescription

let package = Package(
    name: "DPKit",
    products: [
        .library(name: "DPSchema", targets: ["DPSchema"]),
        .library(name: "DPTensor", targets: ["DPTensor"]),
        .library(name: "DPAccounting", targets: ["DPAccounting"]),
        .library(name: "DPLayers", targets: ["DPLayers"]),
        .library(name: "DPCrypto", targets: ["DPCrypto"]),
        .library(name: "DPData", targets: ["DPData"]),
        .library(name: "DPFeatures", targets: ["DPFeatures"]),
        .library(name: "DPTraining", targets: ["DPTraining"]),
        .library(name: "DPAuditing", targets: ["DPAuditing"]),
        .library(name: "DPFederated", targets: ["DPFederated"]),
        .library(name: "DPFederatedNetwork", targets: ["DPFederatedNetwork"]),
        .library(name: "DPExperiments", targets: ["DPExperiments"]),
        .library(name: "DPMPI", targets: ["DPMPI"]),
        .library(name: "DPBenchmarking", targets: ["DPBenchmarking"]),
        .executable(name: "dpkit", targets: ["dpkit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Federated learning as separate processes (DPFederatedNetwork only): swift-nio and
        // swift-nio-ssl directly, with a small length-prefixed binary protocol. Not gRPC: grpc-swift
        // with the protobuf plugin adds about 10 build minutes in CI on 2 cores, and this way there
        // is no generated code at all. Measured: a fresh debug build costs 541 s of CPU instead of
        // 264 s (swift-nio-ssl compiles its own copy of BoringSSL).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // MARK: - System libraries
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .systemLibrary(
            name: "CLAPACKE", path: "Sources/CLAPACKE",
            providers: [.apt(["liblapacke-dev"])]),
        .systemLibrary(
            name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3",
            providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib",
            providers: [.apt(["zlib1g-dev"])]),

        // MARK: - C kernels (multiversioned for AVX-512/AVX2/baseline x86-64; no -march flags)
        .target(name: "CDPKernels", path: "Sources/CDPKernels"),

        // MARK: - Library modules
        .target(name: "DPSchema"),
        .target(name: "DPTensor", dependencies: ["CBLAS", "CLAPACKE", "CDPKernels"]),
        .target(name: "DPAccounting", dependencies: ["CFFTW"]),
        .target(name: "DPLayers", dependencies: ["DPSchema", "DPTensor"]),
        .target(
            name: "DPCrypto",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        .target(name: "DPData", dependencies: ["DPSchema", "DPTensor", "DPCrypto", "CZlib"]),
        .target(name: "DPFeatures", dependencies: ["DPData", "DPTensor", "CFFTW"]),
        .target(name: "DPTraining", dependencies: ["DPSchema", "DPTensor", "DPLayers", "DPData", "DPAccounting"]),
        .target(
            name: "DPAuditing",
            dependencies: ["DPTensor", "DPLayers", "DPData", "DPTraining", "DPAccounting"]),
        .target(
            name: "DPFederated",
            dependencies: [
                "DPTensor", "DPLayers", "DPData", "DPTraining", "DPAccounting", "DPAuditing",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        .target(
            name: "DPFederatedNetwork",
            dependencies: [
                "DPFederated", "DPTensor",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "DPExperiments",
            dependencies: [
                "DPSchema", "DPTraining", "DPAuditing", "DPAccounting", "DPData", "DPFeatures", "DPLayers", "DPTensor",
                "DPCrypto", "DPFederated", .product(name: "Yams", package: "Yams"),
            ]),
        .target(name: "DPMPI", dependencies: ["DPTraining"]),
        .target(
            name: "DPBenchmarking",
            dependencies: ["DPSchema", "DPTensor", "DPLayers", "DPData", "DPTraining", "DPCrypto"]),
        .executableTarget(
            name: "dpkit",
            dependencies: [
                "DPExperiments", "DPTraining", "DPBenchmarking", "DPAuditing", "DPAccounting", "DPData", "DPFeatures",
                "DPLayers", "DPTensor", "DPCrypto", "DPMPI", "DPFederated", "DPFederatedNetwork",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: - Tests
        .testTarget(name: "DPTensorTests", dependencies: ["DPTensor"]),
        .testTarget(name: "DPAccountingTests", dependencies: ["DPAccounting"]),
        .testTarget(name: "DPLayersTests", dependencies: ["DPLayers", "DPSchema", "DPTensor"]),
        .testTarget(name: "DPCryptoTests", dependencies: ["DPCrypto"]),
        .testTarget(name: "DPDataTests", dependencies: ["DPData", "DPSchema", "DPTensor"]),
        .testTarget(name: "DPFeaturesTests", dependencies: ["DPFeatures", "DPData", "DPTensor"]),
        .testTarget(
            name: "DPTrainingTests", dependencies: ["DPTraining", "DPLayers", "DPData", "DPAccounting", "DPTensor"]),
        .testTarget(
            name: "DPAuditingTests",
            dependencies: ["DPAuditing", "DPTraining", "DPLayers", "DPData", "DPAccounting", "DPTensor"]),
        .testTarget(
            name: "DPFederatedTests",
            dependencies: [
                "DPFederated", "DPTraining", "DPLayers", "DPData", "DPAccounting", "DPAuditing", "DPTensor",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "DPFederatedNetworkTests",
            dependencies: [
                "DPFederatedNetwork", "DPFederated", "DPExperiments", "DPTraining", "DPLayers", "DPData", "DPTensor",
            ]),
        // README.md, docs/ and the DocC articles: every Swift snippet is compiled in Examples/.
        .testTarget(name: "DocumentationTests"),
        // Fixtures/: configs and tables of cases, read from the source tree.
        .testTarget(
            name: "DPExperimentsTests",
            dependencies: [
                "DPExperiments", "DPTraining", "DPAccounting", "DPLayers", "DPData", "DPTensor", "DPCrypto",
            ],
            exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)

// `make docs` only (DPKIT_DOCS set, scratch folder .build-docs): the DocC plugin. Ordinary
// builds, `make test` and CI neither resolve nor fetch it.
if Context.environment["DPKIT_DOCS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"))
}

// `make mpi` only (DPKIT_MPI=mpich or ompi, scratch folder .build-mpi): DPMPI links MPI through
// the system library CMPI (pkg-config `mpich` or `ompi`) and compiles its MPI code
// (`#if DPKIT_MPI`). Without DPKIT_MPI nothing needs MPI installed, and `mpirun` with several
// ranks is refused by name.
if let flavour = Context.environment["DPKIT_MPI"], !flavour.isEmpty {
    let pkgConfig = flavour == "ompi" || flavour == "openmpi" ? "ompi" : "mpich"
    package.targets.append(
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: pkgConfig,
            providers: [.apt(pkgConfig == "ompi" ? ["libopenmpi-dev", "openmpi-bin"] : ["libmpich-dev", "mpich"])]))
    if let mpi = package.targets.first(where: { $0.name == "DPMPI" }) {
        mpi.dependencies.append("CMPI")
        mpi.swiftSettings = [.define("DPKIT_MPI")]
    }
}
