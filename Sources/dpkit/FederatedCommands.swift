import ArgumentParser
import DPExperiments
import DPFederated
import DPFederatedNetwork
import DPTensor
import Foundation

struct FederatedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federated",
        abstract:
            "Run a `federated:` config as separate processes over the network (TLS): one server, K client processes.",
        discussion: """
            The server and the clients run the same round logic as `dpkit run` (the simulation), and \
            the result equals the simulation's bit for bit (docs/federated.md, "Running as separate \
            processes").
            """,
        subcommands: [FederatedServerCommand.self, FederatedClientCommand.self])
}

/// The one run of a config that a federated server or client process serves.
/// A flag's value checked before the command runs: a failure is a usage error (exit status 64).
func validateFlag(_ check: () throws -> Void) throws {
    do { try check() } catch let e as ValidationError { throw e } catch { throw ValidationError("\(error)") }
}

/// A file a flag names must be readable before anything starts.
func requireFile(_ path: String, flag: String) throws {
    guard FileManager.default.isReadableFile(atPath: path) else {
        throw ValidationError("\(flag) \(path): no such readable file (give a PEM file)")
    }
}

func singleFederatedRun(_ path: String, seeds: [Int]) throws -> (ExperimentConfig, ResolvedRun) {
    var experiment = try reportingFailure { try ExperimentConfig.load(file: path) }
    do { try experiment.restrict(toSeeds: seeds, source: path) } catch let error as UnknownSeedsError {
        throw ValidationError("--seed \(error)")
    }
    guard experiment.runs.count == 1, let run = experiment.runs.first else {
        throw ValidationError(
            "\(path) resolves to \(experiment.runs.count) runs, and a federated server trains exactly one: pick a seed with --seed S (on the server and every client), and sweep other keys in separate configs"
        )
    }
    guard run.config.federated != nil else {
        throw ValidationError("\(path) has no `federated:` section: train it with `dpkit run`")
    }
    return (experiment, run)
}

struct FederatedServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Serve one federated run to K client processes and write its result folder (as `dpkit run` does).")

    @Argument(help: "The experiment config (YAML) with a `federated:` section, resolving to one run.") var config:
        String
    @Option(help: "Output directory (default runs/<config name>).") var output: String?
    @Option(help: ArgumentHelp("The address to listen on.", valueName: "HOST:PORT")) var listen: String
    @Option(
        help:
            "The server's certificate chain (PEM); its subject alternative names must name the address clients connect to."
    )
    var tlsCert: String
    @Option(help: "The certificate's private key (PEM).") var tlsKey: String
    @Option(help: "K: the client processes, started with --hosts 0/K ... K-1/K.") var processes: Int
    @Option(name: .customLong("seed"), help: "The seed to run, for a config with several seeds.") var seeds: [Int] = []
    @Option(help: "Seconds to wait for the client processes to join, and for each answer in a round.")
    var timeout: Double = 600

    func validate() throws {
        try validateFlag { _ = try NetworkAddress(parsing: listen, flag: "--listen") }
        try requireFile(tlsCert, flag: "--tls-cert")
        try requireFile(tlsKey, flag: "--tls-key")
        guard processes >= 1 else { throw ValidationError("--processes \(processes): at least one client process") }
    }

    func run() throws {
        let (experiment, run) = try singleFederatedRun(config, seeds: seeds)
        let address = try reportingFailure { try NetworkAddress(parsing: listen, flag: "--listen") }
        if run.config.privacy.enabled && !run.config.privacy.secureRNG {
            // Every client process loads the config and its seed: with seeded randomness any of
            // them can recompute the server's noise and subtract it from the released model.
            FileHandleStderr.write(
                "warning: \(config) is a private run with seeded randomness (privacy.secure_rng: false): every client process knows the seed and can recompute the server's noise, so the released model is not differentially private against them. Set privacy.secure_rng: true for a private run over the network (docs/federated.md, \"Running as separate processes\")\n"
            )
        }
        let server = try reportingFailure {
            try FederatedServer(
                options: .init(
                    listen: address, certificate: tlsCert, key: tlsKey, processes: processes, timeout: timeout))
        }
        let port = try reportingFailure { try server.start() }
        print("DPKit \(DPKitVersion.string); \(BLASRuntime.summary)")
        print(
            "federated server: listening on \(NetworkAddress(host: address.host, port: port)) (TLS) for \(processes) client processes"
        )
        // Every client process joins (and agrees on the run) before anything is written.
        do { try server.acceptClients(configHash: run.configHash, seed: run.seed) } catch {
            server.finish(failure: "\(error)")
            throw reportFailure(error)
        }
        print("federated server: \(processes) client processes joined run \(run.runID)")
        let out = URL(fileURLWithPath: output ?? "runs/\(experiment.name)")
        var executor = TrainingExecutor()
        executor.federatedTransport = { trainer, _ in
            server.minimumSecureClients = trainer.configuration.secureAggregation?.minimumClients ?? 1
            return server
        }
        let env = RunEnvironment(
            dpkitVersion: DPKitVersion.string, gitCommit: RunCommand.gitCommit(), blasCore: BLASRuntime.coreName,
            blasThreads: String(BLASRuntime.threadCount))
        let runner = ExperimentRunner(
            config: experiment, outputDirectory: out, executor: executor, resume: false, environment: env)
        runner.status = { print($0) }
        runner.statusInterval = 30
        let report: ExperimentReport
        do { report = try runner.run() } catch {
            server.finish(failure: "the server failed: \(plainDescription(of: error))")
            throw reportFailure(error)
        }
        if !report.failed.isEmpty {
            server.finish(failure: "the run failed; its error is in \(out.path)/runs.csv")
            FileHandleStderr.write(
                "error: the federated run failed; its error is in \(out.path)/runs.csv, and the clients were told\n")
            throw ExitCode(ExitStatus.failure.rawValue)
        }
        server.finish()
        print("federated server: done; results in \(out.path)")
    }
}

struct FederatedClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Host the clients k with k mod K == I of a federated run and answer the server's rounds.")

    @Option(help: ArgumentHelp("The server's address.", valueName: "HOST:PORT")) var connect: String
    @Option(help: "The CA certificate (PEM) that signed the server's certificate.") var ca: String
    @Option(
        help:
            "The server's experiment config (this process loads its own clients' data from its dataset and partition).")
    var config: String
    @Option(help: ArgumentHelp("Host the clients k with k mod K == I.", valueName: "I/K")) var hosts: String
    @Option(name: .customLong("seed"), help: "The seed the server runs, for a config with several seeds.")
    var seeds: [Int] = []
    @Option(help: "Seconds to keep trying to reach the server.") var connectTimeout: Double = 30
    @Option(help: "Seconds to wait for each message of the server.") var timeout: Double = 600

    func validate() throws {
        try validateFlag { _ = try NetworkAddress(parsing: connect, flag: "--connect") }
        try validateFlag { _ = try FederatedClient.parseHosts(hosts) }
        try requireFile(ca, flag: "--ca")
    }

    func run() throws {
        let (_, run) = try singleFederatedRun(config, seeds: seeds)
        let address = try reportingFailure { try NetworkAddress(parsing: connect, flag: "--connect") }
        let (i, k) = try reportingFailure { try FederatedClient.parseHosts(hosts) }
        let client = try reportingFailure {
            try FederatedClient(
                options: .init(
                    server: address, ca: ca, host: i, hosts: k, connectTimeout: connectTimeout, timeout: timeout))
        }
        try reportingFailure { try client.connect(configHash: run.configHash, seed: run.seed) }
        print("federated client \(i)/\(k): joined \(address) for run \(run.runID)")
        let trainer = try reportingFailure { try TrainingExecutor().federatedTrainer(for: run) }
        try reportingFailure { try client.serve(trainer: trainer) }
        print("federated client \(i)/\(k): done after \(client.rounds) rounds")
    }
}
