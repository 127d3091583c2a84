// Type fixture (compiled by __test__/types.test.ts against the published
// declarations): what the package's own modules share is not published.
// Classes made by the library have private constructors, and no internal
// member, native handle or internal function is visible.
import { BatchEncoding, BatchJob, ImageProcessor, Pipeline, Session, SessionStream, Tensor, Tokenizer } from 'oxinfer'
// @ts-expect-error [TS2305] session internals are not exported
import { internalsOf } from 'oxinfer'
// @ts-expect-error [TS2305] nor is the addon
import { native } from 'oxinfer'
// @ts-expect-error [TS2305] nor are the helpers of tensors
import { outputTensor } from 'oxinfer'

declare const job: BatchJob<number>
declare const session: Session
declare const stream: SessionStream

// @ts-expect-error [TS2673] jobs are made by runJob
new BatchJob(1, () => {}, () => {})
// @ts-expect-error [TS2673] streams are made by session.stream
new SessionStream()
// @ts-expect-error [TS2673] batch encodings are made by encodeBatch
new BatchEncoding([])
// @ts-expect-error [TS2673] sessions are made by Session.create
new Session()
// @ts-expect-error [TS2673] pipelines are made by Pipeline.create
new Pipeline()
// @ts-expect-error [TS2673] tokenizers are made by fromFile or fromJSON
new Tokenizer()

// @ts-expect-error [TS2339] a job's consumer cannot push
job.push(1)
// @ts-expect-error [TS2339] nor finish it
job.finish({ rows: 0, errors: 0, seconds: 0, rowsPerSecond: 0 })
// @ts-expect-error [TS2339] nor fail it
job.fail(new Error('x'))
// @ts-expect-error [TS2339] nor wait for room
void job.room()
// @ts-expect-error [TS2339] nor read whether it settled (await done)
void job.settled
// @ts-expect-error [TS2339] a session's native handle is private
void session.native
// @ts-expect-error [TS2339] a stream's native handle is private
void stream.native

// What is public stays usable.
const tensor = new Tensor('float32', [1])
const processor = new ImageProcessor()
const iterator: AsyncIterator<number> = job[Symbol.asyncIterator]()
void [internalsOf, native, outputTensor, tensor, processor, iterator]
