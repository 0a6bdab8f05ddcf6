// `npm run bench`: every benchmark in turn; each prints its own table.
import { benchAutoscale } from './autoscale.js';
import { benchAws } from './aws.js';
import { benchCommit } from './commit.js';
import { benchGroup } from './group.js';
import { benchRpc } from './rpc.js';
import { benchServe } from './serve.js';

await benchGroup();
await benchCommit();
await benchAws();
await benchRpc();
await benchAutoscale();
await benchServe();
