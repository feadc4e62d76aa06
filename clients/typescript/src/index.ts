export * from "./client";
export * from "./errors";
export * as common from "./gen/mleb/common/v1/common";
export * as grader from "./gen/mleb/grader/v1/grader_service";
export * as registry from "./gen/mleb/registry/v1/registry_service";
export * as sandbox from "./gen/mleb/sandbox/v1/sandbox_service";
