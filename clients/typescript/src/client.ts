// A typed client for mleb's registry, grader and sandbox service. Every call carries a
// deadline (the client's `timeoutMs` unless the call gives one) and the bearer token; failures
// reject with MlebError subclasses decoded from the server's status details. Which RPCs it
// covers, and which it leaves to the generated stubs, is checked by
// tests/unit/client/test_rpc_coverage.py.
//
//   const client = new MlebClient({ registry: "10.0.0.1:50051", grader: "10.0.0.1:50052",
//                                   token: process.env.MLEB_TOKEN });
//   const reply = await client.validateSubmission("spaceship-titanic", "submission.csv");
import { readFile } from "node:fs/promises";
import {
  type CallOptions,
  type ChannelCredentials,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { fromServiceError } from "./errors";
import { DescriptionVariant } from "./gen/mleb/common/v1/common";
import {
  type GradeSubmissionResponse,
  GraderServiceClient,
  type ListPublicKeysResponse as GraderKeysResponse,
  type RankScoreResponse,
  type ScoreSubmissionResponse,
  type SubmissionHeader,
  type ValidateSubmissionResponse,
} from "./gen/mleb/grader/v1/grader_service";
import {
  type DownloadPublicDataResponse,
  type ExportAuditChainResponse,
  type GetCompetitionResponse,
  type GetLeaderboardResponse,
  ListCompetitionsRequest,
  type ListCompetitionsResponse,
  ListPublicFilesRequest,
  type ListPublicFilesResponse,
  type ListSplitsResponse,
  RegistryServiceClient,
  type RevokeTokenRequest,
  type RevokeTokenResponse,
} from "./gen/mleb/registry/v1/registry_service";
import {
  CreateSandboxRequest,
  type CreateSandboxResponse,
  type DownloadArtifactsResponse,
  type GetSandboxResponse,
  type ListGpusResponse,
  ListSandboxesRequest,
  type ListSandboxesResponse,
  type ListPublicKeysResponse as SandboxKeysResponse,
  SandboxServiceClient,
  type StopSandboxResponse,
  type StreamLogsResponse,
} from "./gen/mleb/sandbox/v1/sandbox_service";

export const DEFAULT_TIMEOUT_MS = 30_000;
/** Pass as `timeoutMs` for a call with no deadline, such as following a long run's logs. */
export const NO_DEADLINE = Number.POSITIVE_INFINITY;
// The servers accept messages up to 16 MiB; 1 MiB chunks keep each one small.
const CHUNK_BYTES = 1024 * 1024;

export interface ClientOptions {
  /** host:port of the RegistryService. */
  registry?: string;
  /** host:port of the GraderService. */
  grader?: string;
  /** host:port of the SandboxService. */
  sandbox?: string;
  /** A token minted by the operator (`mleb token issue`); sent as `authorization: Bearer`. */
  token?: string;
  /** Deadline of every call that does not give its own. */
  timeoutMs?: number;
  /** Insecure by default; pass `credentials.createSsl(...)` for TLS. */
  credentials?: ChannelCredentials;
}

export interface CallSettings {
  /** This call's deadline, from when it starts. */
  timeoutMs?: number;
}

/** What RevokeToken revokes: a token (a lab may revoke its own), or, with the service role,
 * a token id or every token of a sandbox. */
export type RevokeTarget = { token: string } | { tokenId: string } | { sandboxId: string };

export interface RevokeSettings extends CallSettings {
  /** When the revocation may be forgotten; read from the token itself when one is given. */
  expiresAt?: Date;
  /** Why, for the record. */
  reason?: string;
}

export interface StreamLogsSettings extends CallSettings {
  /** Resume after this sequence number (exclusive); 0 from the start. */
  afterSeq?: number;
  /** Keep streaming until the sandbox has ended; pair it with `timeoutMs: NO_DEADLINE`. */
  follow?: boolean;
}

/** A submission's bytes, or the path of a file to read them from. */
export type Submission = Uint8Array | string;

export interface SubmissionSettings extends CallSettings {
  /** The name kept in reports; defaults to the file path when one is given. */
  submissionPath?: string;
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => ClientUnaryCall;
type UploadMethod<Req, Res> = (
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => ClientWritableStream<Req>;
// The three upload RPCs share one request shape: a header, then chunks.
type UploadRequest = {
  part: { $case: "header"; header: SubmissionHeader } | { $case: "chunk"; chunk: Buffer };
};

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && "code" in error && "metadata" in error;
}

export class MlebClient {
  private readonly registryStub?: RegistryServiceClient;
  private readonly graderStub?: GraderServiceClient;
  private readonly sandboxStub?: SandboxServiceClient;
  private readonly token: string;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    const channelCredentials = options.credentials ?? grpcCredentials.createInsecure();
    if (options.registry) {
      this.registryStub = new RegistryServiceClient(options.registry, channelCredentials);
    }
    if (options.grader) {
      this.graderStub = new GraderServiceClient(options.grader, channelCredentials);
    }
    if (options.sandbox) {
      this.sandboxStub = new SandboxServiceClient(options.sandbox, channelCredentials);
    }
    this.token = options.token ?? "";
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  close(): void {
    this.registryStub?.close();
    this.graderStub?.close();
    this.sandboxStub?.close();
  }

  // Registry

  listCompetitions(
    request: Partial<ListCompetitionsRequest> = {},
    settings?: CallSettings,
  ): Promise<ListCompetitionsResponse> {
    const registry = this.registry();
    return this.unary(
      registry.listCompetitions.bind(registry),
      ListCompetitionsRequest.fromPartial(request),
      settings,
    );
  }

  /** `omitPublicFiles` leaves the file list out; page it with `listPublicFiles`. */
  getCompetition(
    competitionId: string,
    descriptionVariant: DescriptionVariant = DescriptionVariant.DESCRIPTION_VARIANT_PLAIN,
    settings?: CallSettings,
    omitPublicFiles = false,
  ): Promise<GetCompetitionResponse> {
    const registry = this.registry();
    return this.unary(
      registry.getCompetition.bind(registry),
      { competitionId, descriptionVariant, omitPublicFiles },
      settings,
    );
  }

  /** One page of the competition's public files, in path order. */
  listPublicFiles(
    request: Partial<ListPublicFilesRequest>,
    settings?: CallSettings,
  ): Promise<ListPublicFilesResponse> {
    const registry = this.registry();
    return this.unary(
      registry.listPublicFiles.bind(registry),
      ListPublicFilesRequest.fromPartial(request),
      settings,
    );
  }

  getLeaderboard(competitionId: string, settings?: CallSettings): Promise<GetLeaderboardResponse> {
    const registry = this.registry();
    return this.unary(registry.getLeaderboard.bind(registry), { competitionId }, settings);
  }

  listSplits(settings?: CallSettings): Promise<ListSplitsResponse> {
    const registry = this.registry();
    return this.unary(registry.listSplits.bind(registry), {}, settings);
  }

  /** Yields the competition's public files in chunks; `paths` picks files (default: all). */
  async *downloadPublicData(
    competitionId: string,
    paths: string[] = [],
    settings?: CallSettings,
  ): AsyncGenerator<DownloadPublicDataResponse> {
    yield* this.drain(
      this.registry().downloadPublicData(
        { competitionId, paths, packed: false },
        this.metadata(),
        this.callOptions(settings),
      ),
    );
  }

  /** Revokes a token before it expires; revoking again keeps the longest life. */
  revokeToken(target: RevokeTarget, settings?: RevokeSettings): Promise<RevokeTokenResponse> {
    const registry = this.registry();
    const oneof: RevokeTokenRequest["target"] =
      "token" in target
        ? { $case: "token", token: target.token }
        : "tokenId" in target
          ? { $case: "tokenId", tokenId: target.tokenId }
          : { $case: "sandboxId", sandboxId: target.sandboxId };
    return this.unary(
      registry.revokeToken.bind(registry),
      { target: oneof, expiresAt: settings?.expiresAt, reason: settings?.reason ?? "" },
      settings,
    );
  }

  /** One page of the audit chain; follow `nextFromSeq` for the rest. */
  exportAuditChain(
    fromSeq: number,
    toSeq = 0,
    settings?: CallSettings,
  ): Promise<ExportAuditChainResponse> {
    const registry = this.registry();
    return this.unary(registry.exportAuditChain.bind(registry), { fromSeq, toSeq }, settings);
  }

  // Grader

  /** Checks the submission's format; never reveals a score. */
  validateSubmission(
    competitionId: string,
    submission: Submission,
    settings?: SubmissionSettings,
  ): Promise<ValidateSubmissionResponse> {
    const grader = this.grader();
    return this.upload(grader.validateSubmission.bind(grader), competitionId, submission, settings);
  }

  scoreSubmission(
    competitionId: string,
    submission: Submission,
    settings?: SubmissionSettings,
  ): Promise<ScoreSubmissionResponse> {
    const grader = this.grader();
    return this.upload(grader.scoreSubmission.bind(grader), competitionId, submission, settings);
  }

  gradeSubmission(
    competitionId: string,
    submission: Submission,
    settings?: SubmissionSettings,
  ): Promise<GradeSubmissionResponse> {
    const grader = this.grader();
    return this.upload(grader.gradeSubmission.bind(grader), competitionId, submission, settings);
  }

  /** Ranks a score against the leaderboard; an undefined score ranks "no score". */
  rankScore(
    competitionId: string,
    score: number | undefined,
    settings?: CallSettings,
  ): Promise<RankScoreResponse> {
    const grader = this.grader();
    return this.unary(grader.rankScore.bind(grader), { competitionId, score }, settings);
  }

  /** The grader's ListPublicKeys: the keys its grading statements are signed with. */
  listGraderKeys(settings?: CallSettings): Promise<GraderKeysResponse> {
    const grader = this.grader();
    return this.unary(grader.listPublicKeys.bind(grader), {}, settings);
  }

  // Sandbox

  /** Not retried; with an `idempotencyKey` a retry returns the first sandbox. */
  createSandbox(
    request: Partial<CreateSandboxRequest>,
    settings?: CallSettings,
  ): Promise<CreateSandboxResponse> {
    const sandbox = this.sandbox();
    return this.unary(
      sandbox.createSandbox.bind(sandbox),
      CreateSandboxRequest.fromPartial(request),
      settings,
    );
  }

  getSandbox(sandboxId: string, settings?: CallSettings): Promise<GetSandboxResponse> {
    const sandbox = this.sandbox();
    return this.unary(sandbox.getSandbox.bind(sandbox), { sandboxId }, settings);
  }

  listSandboxes(
    request: Partial<ListSandboxesRequest> = {},
    settings?: CallSettings,
  ): Promise<ListSandboxesResponse> {
    const sandbox = this.sandbox();
    return this.unary(
      sandbox.listSandboxes.bind(sandbox),
      ListSandboxesRequest.fromPartial(request),
      settings,
    );
  }

  /** Yields batches of log entries; `follow` streams until the sandbox has ended. */
  async *streamLogs(
    sandboxId: string,
    settings?: StreamLogsSettings,
  ): AsyncGenerator<StreamLogsResponse> {
    yield* this.drain(
      this.sandbox().streamLogs(
        { sandboxId, afterSeq: settings?.afterSeq ?? 0, follow: settings?.follow ?? false },
        this.metadata(),
        this.callOptions(settings),
      ),
    );
  }

  /** Stops a sandbox (it ends CANCELLED); stopping a stopped sandbox is a no-op. */
  stopSandbox(
    sandboxId: string,
    reason = "",
    settings?: CallSettings,
  ): Promise<StopSandboxResponse> {
    const sandbox = this.sandbox();
    return this.unary(
      sandbox.stopSandbox.bind(sandbox),
      { sandboxId, reason, gracePeriod: undefined },
      settings,
    );
  }

  /** Yields the artifact archive in chunks; the first carries its size and sha256. */
  async *downloadArtifacts(
    sandboxId: string,
    settings?: CallSettings,
  ): AsyncGenerator<DownloadArtifactsResponse> {
    yield* this.drain(
      this.sandbox().downloadArtifacts({ sandboxId }, this.metadata(), this.callOptions(settings)),
    );
  }

  listGpus(settings?: CallSettings): Promise<ListGpusResponse> {
    const sandbox = this.sandbox();
    return this.unary(sandbox.listGpus.bind(sandbox), {}, settings);
  }

  /** The sandbox service's ListPublicKeys: the keys its attestations are signed with. */
  listSandboxKeys(settings?: CallSettings): Promise<SandboxKeysResponse> {
    const sandbox = this.sandbox();
    return this.unary(sandbox.listPublicKeys.bind(sandbox), {}, settings);
  }

  // Plumbing

  private registry(): RegistryServiceClient {
    if (!this.registryStub) {
      throw new Error("this client has no registry address: pass `registry` to MlebClient");
    }
    return this.registryStub;
  }

  private grader(): GraderServiceClient {
    if (!this.graderStub) {
      throw new Error("this client has no grader address: pass `grader` to MlebClient");
    }
    return this.graderStub;
  }

  private sandbox(): SandboxServiceClient {
    if (!this.sandboxStub) {
      throw new Error("this client has no sandbox address: pass `sandbox` to MlebClient");
    }
    return this.sandboxStub;
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.token) {
      metadata.set("authorization", `Bearer ${this.token}`);
    }
    return metadata;
  }

  private callOptions(settings?: CallSettings): Partial<CallOptions> {
    return { deadline: Date.now() + (settings?.timeoutMs ?? this.timeoutMs) };
  }

  private async *drain<Res>(stream: ClientReadableStream<Res>): AsyncGenerator<Res> {
    try {
      for await (const message of stream) {
        yield message as Res;
      }
    } catch (error) {
      throw isServiceError(error) ? fromServiceError(error) : error;
    } finally {
      // A consumer that stops early must not leave the stream open.
      stream.cancel();
    }
  }

  private unary<Req, Res>(
    method: UnaryMethod<Req, Res>,
    request: Req,
    settings?: CallSettings,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method(request, this.metadata(), this.callOptions(settings), (error, response) =>
        error ? reject(fromServiceError(error)) : resolve(response),
      );
    });
  }

  private async upload<Req extends UploadRequest, Res>(
    method: UploadMethod<Req, Res>,
    competitionId: string,
    submission: Submission,
    settings?: SubmissionSettings,
  ): Promise<Res> {
    const data = typeof submission === "string" ? await readFile(submission) : submission;
    const submissionPath =
      settings?.submissionPath ?? (typeof submission === "string" ? submission : "");
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return new Promise((resolve, reject) => {
      const call = method(this.metadata(), this.callOptions(settings), (error, response) =>
        error ? reject(fromServiceError(error)) : resolve(response),
      );
      const header = { competitionId, submissionPath, sizeBytes: bytes.length };
      call.write({ part: { $case: "header", header } } as Req);
      // The bytes are already in memory, so writing ahead of the network costs nothing.
      for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
        const chunk = bytes.subarray(offset, offset + CHUNK_BYTES);
        call.write({ part: { $case: "chunk", chunk } } as Req);
      }
      call.end();
    });
  }
}
