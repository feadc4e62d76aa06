// A typed client for mleb's registry and grader. Every call carries a deadline (the
// client's `timeoutMs` unless the call gives one) and the bearer token; failures reject
// with MlebError subclasses decoded from the server's status details.
//
//   const client = new MlebClient({ registry: "10.0.0.1:50051", grader: "10.0.0.1:50052",
//                                   token: process.env.MLEB_TOKEN });
//   const reply = await client.validateSubmission("spaceship-titanic", "submission.csv");
import { readFile } from "node:fs/promises";
import {
  type CallOptions,
  type ChannelCredentials,
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
  type RankScoreResponse,
  type ScoreSubmissionResponse,
  type SubmissionHeader,
  type ValidateSubmissionResponse,
} from "./gen/mleb/grader/v1/grader_service";
import {
  type DownloadPublicDataResponse,
  type GetCompetitionResponse,
  type GetLeaderboardResponse,
  ListCompetitionsRequest,
  type ListCompetitionsResponse,
  type ListSplitsResponse,
  RegistryServiceClient,
} from "./gen/mleb/registry/v1/registry_service";

export const DEFAULT_TIMEOUT_MS = 30_000;
// The servers accept messages up to 16 MiB; 1 MiB chunks keep each one small.
const CHUNK_BYTES = 1024 * 1024;

export interface ClientOptions {
  /** host:port of the RegistryService. */
  registry?: string;
  /** host:port of the GraderService. */
  grader?: string;
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
    this.token = options.token ?? "";
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  close(): void {
    this.registryStub?.close();
    this.graderStub?.close();
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

  getCompetition(
    competitionId: string,
    descriptionVariant: DescriptionVariant = DescriptionVariant.DESCRIPTION_VARIANT_PLAIN,
    settings?: CallSettings,
  ): Promise<GetCompetitionResponse> {
    const registry = this.registry();
    return this.unary(
      registry.getCompetition.bind(registry),
      { competitionId, descriptionVariant },
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
    const stream = this.registry().downloadPublicData(
      { competitionId, paths },
      this.metadata(),
      this.callOptions(settings),
    );
    try {
      for await (const chunk of stream) {
        yield chunk as DownloadPublicDataResponse;
      }
    } catch (error) {
      throw isServiceError(error) ? fromServiceError(error) : error;
    } finally {
      // A consumer that stops early must not leave the stream open.
      stream.cancel();
    }
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
