/**
 * Client-side throttling sized to EC2's published per-account, per-region API limits, so that
 * Capstan's own calls stay under them and leave headroom for the operators' other tools.
 */

/** Waits until an API call may go out. */
export interface RateLimit {
  /** `operation` is the EC2 action name; `resources` the instances it launches or terminates. */
  acquire(operation: string, resources: number): Promise<void>;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Classic token bucket; waiters are served in arrival order so a large take is not starved. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly capacity: number,
    readonly refillPerSecond: number,
    private readonly clock: Clock = realClock,
  ) {
    this.tokens = capacity;
    this.last = clock.now();
  }

  /** Resolves once `n` tokens (at most the capacity) have been taken. */
  take(n = 1): Promise<void> {
    const want = Math.min(Math.max(n, 0), this.capacity);
    const turn = this.queue.then(async () => {
      this.refill();
      if (this.tokens < want) {
        await this.clock.sleep(((want - this.tokens) / this.refillPerSecond) * 1000);
        this.refill();
      }
      this.tokens -= want;
    });
    this.queue = turn;
    return turn;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.refillPerSecond);
    this.last = now;
  }
}

export interface BucketSize {
  readonly capacity: number;
  readonly refillPerSecond: number;
}

export interface Ec2Limits {
  /** Request bucket of each operation (EC2 meters every action separately). */
  readonly requests: Readonly<Record<string, BucketSize>>;
  /** Bucket of actions not listed above. */
  readonly otherRequests: BucketSize;
  /** Resource buckets: instances launched or terminated. */
  readonly resources: Readonly<Record<string, BucketSize>>;
}

/**
 * EC2's default account limits ("Request throttling for the Amazon EC2 API"):
 * RunInstances and TerminateInstances are resource-intensive actions (50 requests, refill 5/s)
 * and also spend resource tokens: 1000 instances refilled at 2/s for RunInstances, 20/s for
 * TerminateInstances. Describe* are non-mutating actions (100, refill 20/s). Anything else is
 * treated like a mutating action with the conservative 50, refill 5/s.
 */
export const EC2_DEFAULT_LIMITS: Ec2Limits = {
  requests: {
    RunInstances: { capacity: 50, refillPerSecond: 5 },
    TerminateInstances: { capacity: 50, refillPerSecond: 5 },
    DescribeInstances: { capacity: 100, refillPerSecond: 20 },
    DescribeSubnets: { capacity: 100, refillPerSecond: 20 },
  },
  otherRequests: { capacity: 50, refillPerSecond: 5 },
  resources: {
    RunInstances: { capacity: 1000, refillPerSecond: 2 },
    TerminateInstances: { capacity: 1000, refillPerSecond: 20 },
  },
};

/** One request bucket per operation plus resource buckets, created on first use. */
export class Ec2RateLimit implements RateLimit {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly limits: Ec2Limits = EC2_DEFAULT_LIMITS,
    private readonly clock: Clock = realClock,
  ) {}

  async acquire(operation: string, resources: number): Promise<void> {
    await this.bucket(`request:${operation}`, this.limits.requests[operation] ?? this.limits.otherRequests).take(1);
    const size = this.limits.resources[operation];
    if (size && resources > 0) await this.bucket(`resource:${operation}`, size).take(resources);
  }

  private bucket(key: string, size: BucketSize): TokenBucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(size.capacity, size.refillPerSecond, this.clock);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }
}

/**
 * The process-wide limit: EC2 throttles per account and region, so every group shares it. One
 * Capstan serves one account; groups in several regions share it too, which only errs on the safe side.
 */
export const sharedEc2RateLimit: RateLimit = new Ec2RateLimit();
