#!/usr/bin/env bash
# Writes test/fixtures/checkpoints/: checkpoints written by a given gradpool source tree (a release, or
# main at a commit), which test/checkpoint-fixtures.test.ts loads, evaluates and resumes with the current
# code. Each run is written twice: to N epochs (the fixture) and, uninterrupted, to N + 1 (what a resume of
# it for one epoch must give). Usage, from the repository's root:
#   git archive <commit> | tar -x -C /tmp/gradpool-at-commit
#   ln -s "$PWD/node_modules" /tmp/gradpool-at-commit/node_modules
#   scripts/reference/make_checkpoint_fixtures.sh /tmp/gradpool-at-commit <commit>
set -euo pipefail
tree=$(cd "$1" && pwd)
commit=$2
out=test/fixtures/checkpoints
mkdir -p "$tree/$out"
cp "$out/multilabel.csv" "$tree/$out/multilabel.csv"
gradpool() { (cd "$tree" && node --import tsx scripts/gradpool.ts "$@"); }

# name, epochs, then the run's flags (data paths relative to the repository's root)
runs=(
  "iris-momentum-steplr|3|--data csv --train examples/iris/iris-train.csv --test examples/iris/iris-test.csv --label-column species --layers 4,8,3 --batch-size 16 --lr 0.05 --momentum 0.9 --schedule step --step-size 2 --gamma 0.5 --schedule-interval epoch --workers 1 --no-progress"
  "multilabel-bce|2|--data csv --train test/fixtures/checkpoints/multilabel.csv --label-column a,b --loss bce-with-logits --layers 3,6,2 --batch-size 8 --lr 0.1 --momentum 0.5 --nesterov --dampening 0 --weight-decay 0.01 --clip-grad-norm 1 --workers 1 --no-progress"
  "mnist-784-8-10|1|--layers 784,8,10 --lr 0.05 --momentum 0.9 --workers 1 --no-progress"
)
manifest="{\"commit\": \"$commit\", \"runs\": ["
sep=''
for run in "${runs[@]}"; do
  IFS='|' read -r name epochs flags <<<"$run"
  # shellcheck disable=SC2086
  printed=$(gradpool $flags --epochs "$epochs" --out "$out/$name.safetensors" | tail -1)
  # shellcheck disable=SC2086
  gradpool $flags --epochs $((epochs + 1)) --out "$out/$name-next.safetensors" >/dev/null
  cp "$tree/$out/$name.safetensors" "$tree/$out/$name-next.safetensors" "$out/"
  manifest+="$sep{\"name\": \"$name\", \"epochs\": $epochs, \"flags\": \"$flags\", \"printed\": \"${printed//\"/\\\"}\"}"
  sep=', '
done
echo "$manifest]}" > "$out/manifest.json"
