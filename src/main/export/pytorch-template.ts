// The fixed part of the PyTorch script that export/pytorch.ts writes: reading the data files and the
// gradpool checkpoint, gradpool's epoch order, and the DDP training loop. pytorch.ts puts the run's own
// model, loss, optimizer, schedule and data settings in front of it as Python code.
//
// How a step matches gradpool's: each global batch (the same rows as gradpool's, in gradpool's order) is
// cut into one contiguous part per rank; each rank backpropagates its part's loss *sum* times
// world_size / (the batch's total 'mean' weight, all-reduced first), so DDP's gradient average is the
// batch mean over all ranks, as gradpool's single division of the shards' sums is.

export const SCRIPT_BODY = String.raw`

# ---- data --------------------------------------------------------------------------------------------

def read_idx(path):
    """An IDX file (MNIST's format), gzipped or not: its values as a numpy array of its dimensions."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    kinds = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in kinds:
        sys.exit(f"{path}: not an IDX file")
    dims = struct.unpack(">" + "I" * data[3], data[4:4 + 4 * data[3]])
    return np.frombuffer(data, dtype=kinds[data[2]], offset=4 + 4 * data[3], count=int(np.prod(dims))).reshape(dims)


def looks_numeric(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def read_csv(path):
    """The CSV file as gradpool's loadCsv reads it: cells trimmed, empty lines skipped, a header when a
    cell of the first row is not a number, the label columns by name or index, every other column a
    feature (in the order recorded in the checkpoint when it records names)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f, delimiter=CSV_DELIMITER)]
    rows = [r for r in rows if any(c != "" for c in r)]
    header = rows[0] if not all(looks_numeric(c) for c in rows[0]) else None
    body = rows[1:] if header is not None else rows
    labels = [header.index(c) if isinstance(c, str) else c for c in LABEL_COLUMNS]
    if FEATURE_NAMES is not None and header is not None:
        features = [header.index(n) for n in FEATURE_NAMES]
    else:
        features = [c for c in range(len(rows[0])) if c not in labels]
    x = np.array([[float(r[c]) for c in features] for r in body], dtype=np.float32)
    if TARGETS == "index":
        names = CLASS_NAMES or []
        y = np.array([names.index(r[labels[0]]) if r[labels[0]] in names else int(float(r[labels[0]])) for r in body], dtype=np.int64)
    else:
        y = np.array([[float(r[c]) for c in labels] for r in body], dtype=np.float32)
    return x, y


def load_data():
    """The training split, x (N, D) float32 raw features and y, normalised as the model records."""
    if DATA["format"] == "csv":
        x, y = read_csv(DATA["train"])
    else:
        images = read_idx(DATA["images"])
        x = images.reshape(images.shape[0], -1).astype(np.float32)
        y = read_idx(DATA["labels"]).astype(np.int64)
    if VALIDATION is not None:
        # the rows gradpool's splitValidation held out: the first round(fraction * N) of a seeded shuffle
        n = x.shape[0]
        order = shuffled(list(range(n)), Rng(VALIDATION["seed"]))
        held = set(order[:math.floor(VALIDATION["fraction"] * n + 0.5)])
        keep = [r for r in range(n) if r not in held]
        x, y = x[keep], y[keep]
    if x.shape[1] != LAYERS[0]:
        sys.exit(f"the data has {x.shape[1]} features; the model takes {LAYERS[0]}")
    if NORMALIZE is not None:
        # x' = (x - offset) * scale in double, rounded once to float32: as gradpool computes it
        offset = np.array(NORMALIZE["offset"], dtype=np.float32).astype(np.float64)
        scale = np.array(NORMALIZE["scale"], dtype=np.float32).astype(np.float64)
        x = ((x.astype(np.float64) - offset) * scale).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


# ---- gradpool's epoch order (xoshiro128** seeded through splitmix32, as src/shared/rng.ts) --------------

M32 = 0xFFFFFFFF


def rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


class Rng:
    def __init__(self, seed):
        x = seed & M32
        state = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            z = x
            z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M32
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
            state.append((z ^ (z >> 16)) & M32)
        self.s = state

    def next_u32(self):
        s0, s1, s2, s3 = self.s
        result = (rotl((s1 * 5) & M32, 7) * 9) & M32
        t = (s1 << 9) & M32
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 11)
        self.s = [s0, s1, s2, s3]
        return result

    def next_int(self, n):
        limit = 4294967296 - (4294967296 % n)
        while True:
            r = self.next_u32()
            if r < limit:
                return r % n


def shuffled(a, rng):
    """Fisher-Yates in place, as Rng.shuffle."""
    for i in range(len(a) - 1, 0, -1):
        j = rng.next_int(i + 1)
        a[i], a[j] = a[j], a[i]
    return a


def epoch_order(n, epoch):
    """The rows epoch (1-based) visits, in gradpool's order: 0..n-1, shuffled from (SEED, epoch)."""
    order = list(range(n))
    if SHUFFLE:
        shuffled(order, Rng((SEED ^ ((epoch * 0x9E3779B1) & M32)) & M32))
    return torch.tensor(order, dtype=torch.int64)


# ---- checkpoints (safetensors, read and written here: the safetensors package is not needed) ---------

def read_checkpoint(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {t['dtype']}; a gradpool checkpoint holds float32")
        b, e = t["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[8 + n + b:8 + n + e]), dtype=torch.float32).reshape(t["shape"])
    return tensors, meta


# Adam's (AdamW's) state per parameter, saved flat as "optimizer.<name>" (max_exp_avg_sq: AMSGrad only).
ADAM_STATE = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]


def write_checkpoint(path, model, optimizer, state):
    """Writes what gradpool's save() writes (the model's tensors, SGD's momentum buffer or Adam's moments,
    the metadata the source checkpoint had, the new training state), atomically. gradpool --resume
    continues from it."""
    params = list(model.parameters())
    tensors = [(name, p.detach().cpu().contiguous()) for name, p in zip(PARAM_NAMES, params)]
    buffers = [optimizer.state.get(p, {}).get("momentum_buffer") for p in params]
    has_momentum = all(b is not None for b in buffers)
    if has_momentum:
        tensors.append(("optimizer.momentum_buffer", torch.cat([b.detach().cpu().reshape(-1) for b in buffers])))
    states = [optimizer.state.get(p, {}) for p in params]
    adam_step = int(states[0]["step"]) if all("exp_avg" in s for s in states) else 0
    if adam_step > 0:
        for name in ADAM_STATE:
            if all(name in s for s in states):
                tensors.append(("optimizer." + name, torch.cat([s[name].detach().cpu().reshape(-1) for s in states])))
    header, blobs, at = {}, [], 0
    for name, t in tensors:
        blob = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    # The checksums are gradpool's to write: a file without them loads, one with stale ones is refused.
    meta = {k: v for k, v in SOURCE_METADATA.items() if k not in ("gradpool.sha256", "gradpool.header-sha256")}
    meta["gradpool.state"] = json.dumps(dict(state, hasMomentumBuffer=has_momentum, adamStep=adam_step), separators=(",", ":"))
    text = json.dumps({"__metadata__": meta, **header}, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text.encode())) % 8) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())))
        f.write(text.encode())
        f.write(b"".join(blobs))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- training ----------------------------------------------------------------------------------------

def main():
    global SOURCE_METADATA
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=CHECKPOINT, help="the gradpool checkpoint to continue (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="train until this many epochs in all (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps of this run")
    parser.add_argument("--out", default="ddp.safetensors", help="where the model is saved after every epoch (default: %(default)s)")
    parser.add_argument("--metrics", default=None, help="append one JSON line per step, as gradpool --metrics does")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    if "RANK" in os.environ:
        dist.init_process_group("nccl" if cuda else "gloo")
    else:  # a single process, without torchrun
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29511", rank=0, world_size=1)
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    warnings.filterwarnings("ignore", message="Detected call of")  # the scheduler fast-forward below

    tensors, SOURCE_METADATA = read_checkpoint(args.checkpoint)
    state = json.loads(SOURCE_METADATA.get("gradpool.state", '{"epoch":0,"step":0,"schedulerSteps":0,"batch":0}'))
    model = build_model()
    with torch.no_grad():
        for name, p in zip(PARAM_NAMES, model.parameters()):
            p.copy_(tensors[name])
    model = model.to(device)
    ddp = DDP(model, device_ids=[local] if cuda else None)
    optimizer = build_optimizer(ddp.parameters())
    if state.get("hasMomentumBuffer"):
        flat, at = tensors["optimizer.momentum_buffer"], 0
        for p in model.parameters():
            optimizer.state[p]["momentum_buffer"] = flat[at:at + p.numel()].reshape(p.shape).clone().to(device)
            at += p.numel()
    if state.get("adamStep", 0) > 0:
        # torch's own state: the step count (a float32 tensor, as Adam makes it) and the moments.
        for name in ADAM_STATE:
            if "optimizer." + name not in tensors:
                continue
            flat, at = tensors["optimizer." + name], 0
            for p in model.parameters():
                optimizer.state[p][name] = flat[at:at + p.numel()].reshape(p.shape).clone().to(device)
                at += p.numel()
        for p in model.parameters():
            optimizer.state[p]["step"] = torch.tensor(float(state["adamStep"]))
    scheduler = build_scheduler(optimizer)
    for _ in range(state["schedulerSteps"]):
        scheduler.step()
    x, y = load_data()
    N = x.shape[0]
    batches = (N + BATCH_SIZE - 1) // BATCH_SIZE
    metrics = open(args.metrics, "a") if args.metrics and rank == 0 else None
    epoch, step, batch, taken = state["epoch"], state["step"], state.get("batch", 0), 0
    empty = {"lossSum": 0, "weightSum": 0, "correct": 0, "counted": 0, "rows": 0}
    sums = dict(state["epochSums"]) if batch > 0 else dict(empty)
    if rank == 0:
        print(f"continuing {args.checkpoint} at epoch {epoch + 1}, batch {batch + 1} of {batches} (step {step}), "
              f"{world} processes ({'nccl' if cuda else 'gloo'})", flush=True)
    while epoch < args.epochs and (args.max_steps is None or taken < args.max_steps):
        order = epoch_order(N, epoch + 1)
        while batch < batches and (args.max_steps is None or taken < args.max_steps):
            t0 = time.perf_counter()
            rows = order[batch * BATCH_SIZE:min((batch + 1) * BATCH_SIZE, N)]
            mine = rows[rank * len(rows) // world:(rank + 1) * len(rows) // world]
            xb, yb = x[mine].to(device), y[mine].to(device)
            logits = ddp(xb)
            loss_sum, weight = loss_and_weight(logits, yb)
            totals = torch.stack([loss_sum.detach().double(), torch.as_tensor(weight, dtype=torch.float64, device=device)])
            dist.all_reduce(totals)
            batch_loss = (totals[0] / totals[1]).item() if REDUCTION == "mean" else totals[0].item()
            lr = optimizer.param_groups[0]["lr"]
            divisor = totals[1].item() if REDUCTION == "mean" else 1.0
            optimizer.zero_grad(set_to_none=False)
            grad_norm = None
            if divisor == 0:  # every target of the batch ignored: gradpool skips the update
                loss_sum.sum().mul(0).backward()
                applied = False
            else:
                (loss_sum * (world / divisor)).backward()
                finite = math.isfinite(batch_loss) and all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())
                if not finite:
                    if ON_NONFINITE == "stop":
                        sys.exit(f"step {step + 1} (epoch {epoch + 1}, batch {batch + 1}) gave a non-finite loss or gradient; the update was not applied")
                    applied = False
                else:
                    if CLIP is not None:
                        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), **CLIP).item()
                    else:  # the 2-norm, as gradpool's --metrics writes it on every step
                        grad_norm = torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in model.parameters()]), 2.0).item()
                    optimizer.step()
                    applied = True
            step += 1
            batch += 1
            taken += 1
            if SCHEDULE_INTERVAL == "step":
                scheduler.step()
            if math.isfinite(batch_loss):
                sums["lossSum"] += totals[0].item()
                sums["weightSum"] += totals[1].item()
                sums["rows"] += len(rows)
            if rank == 0:
                print(f"step {step}: train loss {batch_loss:.4f}{'' if applied else ' (skipped)'} (took {1000 * (time.perf_counter() - t0):.1f} ms)", flush=True)
                if metrics is not None:
                    line = {"type": "step", "epoch": epoch + 1, "step": step, "loss": batch_loss, "lr": lr}
                    line["gradNorm"] = grad_norm if grad_norm is not None and math.isfinite(grad_norm) else None  # JSON has no NaN
                    metrics.write(json.dumps(line) + "\n")
                    metrics.flush()
        if batch == batches:
            epoch += 1
            batch = 0
            if rank == 0:
                print(f"epoch {epoch}/{args.epochs}: train loss {sums['lossSum'] / sums['weightSum']:.4f}", flush=True)
            sums = dict(empty)
            if SCHEDULE_INTERVAL == "epoch":
                scheduler.step()
        if rank == 0:
            write_checkpoint(args.out, model, optimizer, {
                "epoch": epoch, "step": step, "schedulerSteps": scheduler.last_epoch, "batch": batch,
                "epochSums": sums, "epochSkipped": 0, "epochNonfinite": 0,
            })
    if rank == 0:
        print(f"saved {args.out}", flush=True)
    dist.destroy_process_group()


class Constant:
    """No schedule: the rate stays; counts its steps as the schedulers do."""
    def __init__(self):
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1


if __name__ == "__main__":
    main()
`;
