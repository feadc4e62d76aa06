// The TypeScript client against running mleb servers. tests/integration/client/
// test_typescript_client.py starts a registry and a grader and runs `npm test` with:
//   MLEB_REGISTRY_ADDR, MLEB_GRADER_ADDR  host:port of each server
//   MLEB_TOKEN                            a lab token
//   MLEB_COMPETITION_ID                   a prepared competition
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  DeadlineExceeded,
  InvalidArgument,
  MlebClient,
  type MlebError,
  NotFound,
  Unauthenticated,
} from "../src";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run this through tests/integration/client/test_typescript_client.py`,
    );
  }
  return value;
}

const registry = env("MLEB_REGISTRY_ADDR");
const grader = env("MLEB_GRADER_ADDR");
const competition = env("MLEB_COMPETITION_ID");
const client = new MlebClient({ registry, grader, token: env("MLEB_TOKEN") });

async function rejection(promise: Promise<unknown>): Promise<MlebError> {
  return promise.then(
    () => assert.fail("the call succeeded but should have failed"),
    (error: MlebError) => error,
  );
}

async function sampleSubmission(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of client.downloadPublicData(competition, ["sample_submission.csv"])) {
    chunks.push(chunk.data);
  }
  return Buffer.concat(chunks);
}

describe("mleb TypeScript client", () => {
  let good: Buffer;
  let folder: string;

  before(async () => {
    good = await sampleSubmission();
    folder = await mkdtemp(join(tmpdir(), "mleb-ts-"));
  });

  after(async () => {
    client.close();
    await rm(folder, { recursive: true, force: true });
  });

  test("lists competitions in a split", async () => {
    const listing = await client.listCompetitions({ split: "lite" });
    assert.ok(listing.competitions.map((c) => c.id).includes(competition));
    assert.equal(listing.totalSize, listing.competitions.length);
  });

  test("validates a good submission", async () => {
    const reply = await client.validateSubmission(competition, good);
    assert.deepEqual(reply, { valid: true, message: "Submission is valid.", reason: "" });
  });

  test("rejects a bad submission with a reason and no score", async () => {
    const [header, firstRow] = good.toString("utf8").split("\n");
    const bad = Buffer.from(`${header}\n${firstRow}\n`);
    const reply = await client.validateSubmission(competition, bad);
    assert.equal(reply.valid, false);
    assert.ok(reply.reason.length > 0);
    // MLE-bench's own wording, exactly.
    assert.equal(
      reply.message,
      "Submission invalid! The attempt to grade the submission has resulted in the following " +
        `error message:\n${reply.reason}`,
    );
    assert.deepEqual(Object.keys(reply).sort(), ["message", "reason", "valid"]);
  });

  test("grades a submission read from a file", async () => {
    const path = join(folder, "submission.csv");
    await writeFile(path, good);
    const { report } = await client.gradeSubmission(competition, path);
    assert.ok(report);
    assert.equal(report.competitionId, competition);
    assert.equal(report.submissionPath, path);
    assert.ok(report.validSubmission && report.submissionExists);
    assert.equal(typeof report.score, "number");
    assert.ok(report.createdAt instanceof Date);
    const { ranking } = await client.rankScore(competition, report.score);
    assert.equal(ranking?.anyMedal, report.anyMedal);
  });

  test("a missing competition id is INVALID_ARGUMENT with a field violation", async () => {
    const error = await rejection(client.rankScore("", 0.5));
    assert.ok(error instanceof InvalidArgument);
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.domain, "mleb");
    assert.deepEqual(
      error.fieldViolations.map((v) => v.field),
      ["competition_id"],
    );
    assert.ok(error.requestId, "ErrorInfo metadata carries the request id");
  });

  const unknown = "no-such-competition";
  for (const [rpc, call] of [
    ["GetCompetition", () => client.getCompetition(unknown)],
    ["ValidateSubmission", () => client.validateSubmission(unknown, good)],
  ] as const) {
    test(`${rpc} of an unknown competition is NOT_FOUND with ErrorInfo`, async () => {
      const error = await rejection(call());
      assert.ok(error instanceof NotFound, String(error));
      assert.equal(error.domain, "mleb");
      assert.match(error.reason, /^[A-Z_]+$/);
      assert.equal(error.metadata["competition_id"], unknown);
    });
  }

  test("a call without a token is UNAUTHENTICATED", async () => {
    const anonymous = new MlebClient({ registry });
    try {
      const error = await rejection(anonymous.listSplits());
      assert.ok(error instanceof Unauthenticated, String(error));
      assert.ok(error.reason);
    } finally {
      anonymous.close();
    }
  });

  test("a call past its deadline fails with DeadlineExceeded", async () => {
    const error = await rejection(client.listSplits({ timeoutMs: 0 }));
    assert.ok(error instanceof DeadlineExceeded, String(error));
  });
});
