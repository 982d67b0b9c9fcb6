import Foundation

/// The scripts that run an experiment's sweep as a Slurm job array (`dpkit slurm`): array task
/// `I` of `N` runs shard `I/N` (``ShardSelection``) into its own folder, and a merge job that
/// starts once every task succeeded (`--dependency=afterok`) joins the folders with
/// ``ResultMerge``.
///
/// Layout under `output`:
/// - `array.sbatch`, `merge.sbatch`, `submit.sh` (submits both, prints the job ids);
/// - `shards/<I>/`: the results of task `I` (`dpkit run ... --shard "$SLURM_ARRAY_TASK_ID/N"
///   --resume`, N written into the script, so a requeued task, or one resubmitted alone with
///   `sbatch --array=I array.sbatch`, continues its own shard where it stopped);
/// - `logs/`: Slurm's output of each task and of the merge;
/// - `results/`: the merged folder, as one `dpkit run` would have written it.
public struct SlurmJob: Hashable, Sendable {
    /// Absolute paths: the jobs may start in another working directory.
    public var dpkit: String
    public var config: String
    public var output: String
    public var experimentName: String
    /// Array tasks (shards); at most the number of runs.
    public var tasks: Int
    public var partition: String?
    /// `--time` of each task (`HH:MM:SS`, `D-HH:MM`, as sbatch takes it).
    public var time: String?
    /// CPUs of each task; OpenBLAS uses that many threads.
    public var cpus: Int
    /// `--seed` selections passed on to every task.
    public var seeds: [Int]
    /// The folder the jobs start in (`#SBATCH --chdir`): where `dpkit slurm` ran.
    public var workingDirectory: String
    /// `output.sign_with` of the config: the merge signs the merged folder with it.
    public var signWith: String?

    public init(
        dpkit: String, config: String, output: String, experimentName: String, tasks: Int, partition: String? = nil,
        time: String? = nil, cpus: Int = 1, seeds: [Int] = [],
        workingDirectory: String = FileManager.default.currentDirectoryPath, signWith: String? = nil
    ) {
        self.workingDirectory = workingDirectory
        self.signWith = signWith
        self.dpkit = dpkit
        self.config = config
        self.output = output
        self.experimentName = experimentName
        self.tasks = tasks
        self.partition = partition
        self.time = time
        self.cpus = cpus
        self.seeds = seeds
    }

    public var shardsFolder: String { output + "/shards" }
    public var resultsFolder: String { output + "/results" }
    public var logsFolder: String { output + "/logs" }

    private func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// `#SBATCH --name="value"`: double-quoted (sbatch splits an unquoted value at a space),
    /// `%` doubled (sbatch reads `%a`, `%j`... in file names as patterns).
    private func directive(_ name: String, _ value: String) -> String {
        "#SBATCH --\(name)=\"" + value.replacingOccurrences(of: "%", with: "%%") + "\""
    }

    /// The job name: letters, digits, `.`, `_` and `-` of the experiment name (others become `_`).
    private var jobName: String {
        "dpkit-"
            + String(experimentName.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    }

    private var common: String {
        var lines = [directive("chdir", workingDirectory)]
        if let partition { lines.append(directive("partition", partition)) }
        if let time { lines.append(directive("time", time)) }
        return lines.map { $0 + "\n" }.joined()
    }

    /// What sbatch cannot take in a directive: a double quote or a line break in a path or value.
    /// - Throws: ``ShardError`` naming the value.
    public func validate() throws {
        for (name, value) in [
            ("working directory", workingDirectory), ("output folder", output), ("--partition", partition ?? ""),
            ("--time", time ?? ""),
        ] where value.contains("\"") || value.contains("\n") {
            throw ShardError(
                "the \(name) `\(value)` holds a double quote or a line break, which an #SBATCH line cannot carry; rename it"
            )
        }
    }

    /// The job array: task `I` runs shard `I/tasks`.
    public var arrayScript: String {
        let seedFlags = seeds.map { " --seed \($0)" }.joined()
        return """
            #!/bin/bash
            # Written by `dpkit slurm`: one array task per shard of \(experimentName) (\(tasks) shards).
            #SBATCH --job-name="\(jobName)"
            #SBATCH --array=0-\(tasks - 1)
            #SBATCH --ntasks=1
            #SBATCH --cpus-per-task=\(cpus)
            #SBATCH --output="\(logsFolder.replacingOccurrences(of: "%", with: "%%"))/shard-%a.out"
            \(common)set -euo pipefail
            export OPENBLAS_NUM_THREADS="${SLURM_CPUS_PER_TASK:-\(cpus)}"
            # The shard count is written in: a task resubmitted alone (sbatch --array=I) sees an
            # array of one task, but still runs shard I of \(tasks).
            exec \(quoted(dpkit)) run \(quoted(config))\(seedFlags) --shard "$SLURM_ARRAY_TASK_ID/\(tasks)" --resume \\
                --output \(quoted(shardsFolder))/"$SLURM_ARRAY_TASK_ID"

            """
    }

    /// The merge, run after every array task succeeded.
    public var mergeScript: String {
        let inputs = (0..<tasks).map { quoted("\(shardsFolder)/\($0)") }.joined(separator: " ")
        let sign = signWith.map { " --sign-with " + quoted($0) } ?? ""
        return """
            #!/bin/bash
            # Written by `dpkit slurm`: joins the \(tasks) shard folders of \(experimentName).
            #SBATCH --job-name="\(jobName)-merge"
            #SBATCH --ntasks=1
            #SBATCH --cpus-per-task=1
            \(directive("output", logsFolder + "/merge.out"))
            \(common)set -euo pipefail
            exec \(quoted(dpkit)) merge \(inputs) --output \(quoted(resultsFolder))\(sign)

            """
    }

    /// Submits the array, then the merge with `afterok` on the whole array; prints both ids.
    public var submitScript: String {
        """
        #!/bin/bash
        # Written by `dpkit slurm`: submits the array and its dependent merge.
        set -euo pipefail
        mkdir -p \(quoted(logsFolder)) \(quoted(shardsFolder))
        array=$(sbatch --parsable \(quoted(output + "/array.sbatch")))
        array=${array%%;*}
        merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes \(quoted(output + "/merge.sbatch")))
        merge=${merge%%;*}
        echo "array job $array (\(tasks) tasks), merge job $merge -> \(resultsFolder)"

        """
    }

    /// Writes the three scripts (executable) into `output`.
    /// - Throws: ``FileError`` when the folder or a file cannot be written.
    public func write() throws {
        try validate()
        let folder = URL(fileURLWithPath: output)
        try FileIO.createDirectory(folder)
        try FileIO.createDirectory(URL(fileURLWithPath: logsFolder))
        for (name, text) in [("array.sbatch", arrayScript), ("merge.sbatch", mergeScript), ("submit.sh", submitScript)]
        {
            let url = folder.appendingPathComponent(name)
            try DurableFile.writeAtomically(text, to: url)
            try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
    }
}
