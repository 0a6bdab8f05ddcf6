// `npm run bench`: every benchmark in turn; each prints its own table.
import { benchGroup } from './group.js';

await benchGroup();
