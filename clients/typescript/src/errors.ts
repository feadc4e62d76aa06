// Typed errors decoded from the google.rpc.Status that mleb servers send in the
// `grpc-status-details-bin` trailer: ErrorInfo gives a stable reason to switch on,
// BadRequest names the bad fields, QuotaFailure says which limit was hit.
import { type ServiceError, status } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo, QuotaFailure } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";

const DETAILS_TRAILER = "grpc-status-details-bin";
const TYPE_URL_PREFIX = "type.googleapis.com/";

export interface FieldViolation {
  field: string;
  description: string;
}

export interface QuotaViolation {
  subject: string;
  description: string;
}

/** An RPC failed. `reason`, `domain` and `metadata` come from the server's ErrorInfo. */
export class MlebError extends Error {
  readonly code: status;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];
  readonly quotaViolations: readonly QuotaViolation[];

  constructor(code: status, message: string, details: DecodedDetails = {}) {
    super(`${status[code]}: ${message}`);
    this.name = new.target.name;
    this.code = code;
    this.reason = details.errorInfo?.reason ?? "";
    this.domain = details.errorInfo?.domain ?? "";
    this.metadata = details.errorInfo?.metadata ?? {};
    this.fieldViolations = details.badRequest?.fieldViolations ?? [];
    this.quotaViolations = details.quotaFailure?.violations ?? [];
  }

  /** The id the server logged this call under; quote it when reporting a problem. */
  get requestId(): string {
    return this.metadata["request_id"] ?? "";
  }
}

export class InvalidArgument extends MlebError {}
export class NotFound extends MlebError {}
export class AlreadyExists extends MlebError {}
export class PermissionDenied extends MlebError {}
export class Unauthenticated extends MlebError {}
export class ResourceExhausted extends MlebError {}
export class FailedPrecondition extends MlebError {}
export class Unavailable extends MlebError {}
export class DeadlineExceeded extends MlebError {}

const BY_CODE: Partial<Record<status, typeof MlebError>> = {
  [status.INVALID_ARGUMENT]: InvalidArgument,
  [status.NOT_FOUND]: NotFound,
  [status.ALREADY_EXISTS]: AlreadyExists,
  [status.PERMISSION_DENIED]: PermissionDenied,
  [status.UNAUTHENTICATED]: Unauthenticated,
  [status.RESOURCE_EXHAUSTED]: ResourceExhausted,
  [status.FAILED_PRECONDITION]: FailedPrecondition,
  [status.UNAVAILABLE]: Unavailable,
  [status.DEADLINE_EXCEEDED]: DeadlineExceeded,
};

interface DecodedDetails {
  errorInfo?: ErrorInfo;
  badRequest?: BadRequest;
  quotaFailure?: QuotaFailure;
}

function decodeDetails(trailer: Buffer | undefined): { message?: string; details: DecodedDetails } {
  if (trailer === undefined) {
    return { details: {} };
  }
  const rpcStatus = Status.decode(trailer);
  const details: DecodedDetails = {};
  for (const any of rpcStatus.details) {
    switch (any.typeUrl.slice(TYPE_URL_PREFIX.length)) {
      case "google.rpc.ErrorInfo":
        details.errorInfo = ErrorInfo.decode(any.value);
        break;
      case "google.rpc.BadRequest":
        details.badRequest = BadRequest.decode(any.value);
        break;
      case "google.rpc.QuotaFailure":
        details.quotaFailure = QuotaFailure.decode(any.value);
        break;
    }
  }
  return { message: rpcStatus.message, details };
}

/** Converts a grpc-js error into the typed MlebError subclass for its status code. */
export function fromServiceError(error: ServiceError): MlebError {
  const trailer = error.metadata?.get(DETAILS_TRAILER)[0];
  const { message, details } = decodeDetails(Buffer.isBuffer(trailer) ? trailer : undefined);
  const ErrorClass = BY_CODE[error.code] ?? MlebError;
  return new ErrorClass(error.code, message || error.details, details);
}
