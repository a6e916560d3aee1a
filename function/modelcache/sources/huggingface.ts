import { ENV_HF_TOKEN } from '../../constants.js';
import { tokenCredentials } from './token.js';
import type { HuggingFaceSpec, SourceContext, SourceParts } from './types.js';

export function huggingFaceParts(spec: HuggingFaceSpec, ctx: SourceContext): SourceParts {
  const identity = {
    repo: spec.repo,
    revision: spec.revision,
    include: spec.include,
    exclude: spec.exclude,
    endpoint: spec.endpoint,
  };
  return {
    identity,
    summary: `hf://${spec.repo}@${spec.revision}`,
    plan: {
      type: 'huggingFace',
      ...identity,
      ...(spec.secretRef ? { tokenEnv: ENV_HF_TOKEN } : {}),
    },
    credentials: tokenCredentials(spec.secretRef, ENV_HF_TOKEN, ctx),
    files: undefined,
  };
}
