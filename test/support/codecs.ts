// A request's response bytes through either codec: the SDK's ts-proto one, with which nothing is
// lazy and the ModelCache memo never engages, and the Function's own, as its server runs it.
import { RunFunctionRequest, RunFunctionResponse } from '@crossplane-org/function-sdk-typescript';
import { Writable } from 'node:stream';

import { decodeRunFunctionRequest, type DecodeOptions } from '../../function/codec/request.js';
import { encodeRunFunctionResponse } from '../../function/codec/response.js';
import { runFunction } from '../../function/dispatch.js';
import { createLogger } from '../../function/server/logger.js';

/** The Function's logger writing nowhere: rejected inputs are logged, thousands in a fuzz run. */
export const silentLogger = createLogger(
  { debug: false },
  new Writable({
    write: (_c, _e, done) => {
      done();
    },
  }),
);

export function viaSdkCodec(bytes: Buffer): Buffer {
  return Buffer.from(
    RunFunctionResponse.encode(
      runFunction(RunFunctionRequest.decode(bytes), silentLogger),
    ).finish(),
  );
}

export function viaOwnCodec(bytes: Buffer, opts: DecodeOptions = {}): Buffer {
  return encodeRunFunctionResponse(
    runFunction(decodeRunFunctionRequest(bytes, opts), silentLogger),
  );
}
