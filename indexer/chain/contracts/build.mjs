// Compiles the test contracts with the pinned npm `solc` and writes {abi, bytecode} JSON next
// to the sources. Settings are fixed so a rebuild reproduces the committed artifacts exactly.
// Usage: node indexer/chain/contracts/build.mjs [outDir]
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = process.argv[2] ?? here;
// [source file, contract]; the deposit contracts also get their runtime code, which
// `chainpay contracts verify` compares with what the chain holds.
const contracts = [
  ["TestToken", "TestToken"],
  ["Forwarder", "Forwarder"],
  ["AwkwardToken", "AwkwardToken"],
  ["DepositForwarder", "DepositForwarder"],
  ["DepositForwarder", "ForwarderFactory"],
  ["TestAggregator", "TestAggregator"],
];
const withRuntime = new Set(["DepositForwarder", "ForwarderFactory"]);

const input = {
  language: "Solidity",
  sources: Object.fromEntries(
    [...new Set(contracts.map(([file]) => file))].map((file) => [
      `${file}.sol`,
      { content: readFileSync(join(here, `${file}.sol`), "utf8") },
    ]),
  ),
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    // No metadata hash: the bytecode then depends only on source and settings, not on paths.
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

for (const [file, name] of contracts) {
  const compiled = output.contracts[`${file}.sol`][name];
  const artifact = { abi: compiled.abi, bytecode: `0x${compiled.evm.bytecode.object}` };
  if (withRuntime.has(name)) artifact.deployedBytecode = `0x${compiled.evm.deployedBytecode.object}`;
  writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
}
console.log(`solc ${solc.version()}: wrote ${contracts.map(([, n]) => `${n}.json`).join(", ")} to ${outDir}`);
