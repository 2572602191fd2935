#!/usr/bin/env bash
# Rebuild the bundled GENA-LM zoo from the real data in ../shared/data: every step is a command of the training
# package. Re-running skips finished steps and resumes interrupted training runs (exact resume).
# Usage: bash recipes/zoo/build_zoo.sh [stage ...]
#   stages: prepare pretrain rmt finetune baselines evaluate export scan (default: all, in this order, then export
#   again so the model cards carry the scan results)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
Z=runs/zoo
T="python -m genalm_models.train"
FASTA=$DATA/genome/GRCh37_chr20.fa.gz
stages=${*:-prepare pretrain rmt finetune baselines evaluate export scan export}

train_run() {  # train_run COMMAND CONFIG [overrides...]: start, or resume if the run has checkpoints
  local cmd=$1 cfg=$2; shift 2
  local dir; dir=$(python -c "import yaml,sys; print(yaml.safe_load(open('$cfg'))['run_dir'])")
  for kv in "$@"; do case $kv in run_dir=*) dir=${kv#run_dir=};; esac; done
  if [ -f "$dir/checkpoints/latest" ]; then $T "$cmd" --config "$cfg" --resume "$@"; else $T "$cmd" --config "$cfg" "$@"; fi
}

for stage in $stages; do case $stage in
prepare)
  # chr20 regions: valid 32-36 Mb, test 42-48 Mb (16 kb gaps); the rest trains. Never chrX.
  [ -f $Z/regions/regions.bed ] || $T regions --fasta $FASTA --valid chr20:32000001-36000000 \
      --test chr20:42000001-48000000 --out $Z/regions
  [ -f $Z/tokenizer/tokenizer.json ] || $T tokenizer --fasta $FASTA --exclude-regions $Z/regions/heldout.bed \
      --vocab-size 4096 --out $Z/tokenizer
  [ -f $Z/corpus_train/manifest.json ] || $T corpus --fasta $FASTA --output-dir $Z/corpus_train --passes 3 \
      --exclude-regions $Z/regions/heldout.bed --output-format jsonl.gz
  [ -f $Z/corpus_valid/manifest.json ] || $T corpus --fasta $FASTA --output-dir $Z/corpus_valid --passes 1 \
      --exclude-regions $Z/regions/not_valid.bed --min-stretch-bp 1000
  [ -f $Z/packed_train/packing.json ] || $T pack --corpus $Z/corpus_train --tokenizer $Z/tokenizer \
      --out $Z/packed_train --max-tokens 510
  [ -f $Z/packed_valid/packing.json ] || $T pack --corpus $Z/corpus_valid --tokenizer $Z/tokenizer \
      --out $Z/packed_valid --max-tokens 510
  ;;
pretrain)
  train_run pretrain recipes/zoo/pretrain_mlm.yaml
  ;;
rmt)
  # recurrent-memory MLM pretraining: GENA-LM/mlm and GENA-LM/embedding then take inputs of any length
  [ -f $Z/packed_train_rmt/packing.json ] || $T pack --corpus $Z/corpus_train --tokenizer $Z/tokenizer \
      --out $Z/packed_train_rmt --max-tokens 1996
  [ -f $Z/packed_valid_rmt/packing.json ] || $T pack --corpus $Z/corpus_valid --tokenizer $Z/tokenizer \
      --out $Z/packed_valid_rmt --max-tokens 1996
  train_run rmt recipes/zoo/pretrain_rmt.yaml
  ;;
finetune)
  # shipped: the *_genomic promoter runs and splice; promoter_300 is the published-style run against shuffled negatives
  for m in promoter_300_genomic promoter_2k_genomic splice promoter_16k_genomic promoter_300; do
    train_run finetune recipes/zoo/$m.yaml
  done
  ;;
baselines)
  for m in promoter_300 promoter_2k splice promoter_16k; do train_run finetune recipes/zoo/${m}_scratch.yaml; done
  ;;
evaluate)
  # a result newer than its run's latest checkpoint is kept; retraining a run makes its results stale
  fresh() { [ -f "$1" ] && [ "$1" -nt "$2/checkpoints/latest" ]; }
  mkdir -p $Z/eval
  for m in promoter_300 promoter_2k promoter_16k splice; do
    for variant in "" _genomic _scratch; do
      [ -f $Z/$m$variant/checkpoints/latest ] || continue
      case $m in
      promoter*)  # every promoter model on the same test TSSs against both kinds of negatives; against genomic
        # ones also the window stability (1-50 bp moves of each test window, single-base changes; the 16 kb model
        # on 60 windows and fewer shifts: its windows cost ~8x)
        for neg in shuffle genomic; do
          out=$Z/eval/${m}${variant}_vs_${neg/shuffle/shuffled}.json
          case $neg-$m in
          genomic-promoter_16k) stab="--stability --stability-windows 60 --stability-shifts 1,2,5,20,50" ;;
          genomic-*) stab="--stability" ;;
          *) stab="" ;;
          esac
          fresh $out $Z/$m$variant || $T evaluate --model $Z/$m$variant --config recipes/zoo/$m.yaml --out $out \
              $stab data.args.negatives=$neg
        done ;;
      *) out=$Z/eval/${m}${variant}_vs_test.json  # splice: 200 resamples, each re-ranks ~600k bases
         fresh $out $Z/$m$variant || $T evaluate --model $Z/$m$variant --config recipes/zoo/$m.yaml --out $out \
             --bootstrap 200 ;;
      esac
    done
    case $m in
    promoter*) for neg in shuffle genomic; do
        out=$Z/eval/${m}_kmer_vs_${neg/shuffle/shuffled}.json
        [ -f $out ] || $T baseline --config recipes/zoo/$m.yaml --out $out data.args.negatives=$neg
      done ;;
    *) [ -f $Z/eval/${m}_kmer_vs_test.json ] || $T baseline --config recipes/zoo/$m.yaml \
           --out $Z/eval/${m}_kmer_vs_test.json --bootstrap 200 ;;
    esac
  done
  # does longer context help? 16 kb vs 2 kb on the same test TSSs, paired
  for neg in shuffled genomic; do
    a=$Z/eval/promoter_16k_genomic_vs_$neg.json b=$Z/eval/promoter_2k_genomic_vs_$neg.json
    [ -f $a ] && [ -f $b ] && python recipes/zoo/compare_models.py $a $b --out $Z/eval/compare_16k_vs_2k_$neg.json
  done
  ;;
export)
  ZOO=plugin/zoo/GENA-LM
  V=${ZOO_VERSION:-0.1.0}
  common="--fasta $FASTA --reference-name GRCh37 --version $V"
  notes() { cat recipes/zoo/notes/$1.md - recipes/zoo/notes/_common.md <<< "" > $Z/notes_$1.md; echo "--notes $Z/notes_$1.md"; }
  # the backbone with recurrent memory when the rmt stage has run (inputs of any length), else the plain one
  MLM=$Z/mlm; [ -f $Z/mlm_rmt/checkpoints/latest ] && MLM=$Z/mlm_rmt
  $T export --source $MLM --name GENA-LM/mlm --out $ZOO/mlm --kind mlm --max-tokens 200 --n-examples 2 $common \
      $(notes mlm)
  $T export --source $MLM --name GENA-LM/embedding --out $ZOO/embedding --kind embedding --max-tokens 200 \
      --n-examples 2 $common $(notes embedding)
  # which promoter runs ship: trained against genomic negatives (NEG=_genomic) or shuffled ones (NEG=)
  NEG=${NEG-_genomic}
  for pair in promoter_2k$NEG:promoter promoter_300$NEG:promoter_300 promoter_16k$NEG:promoter_16k splice:splice; do
    run=${pair%%:*} name=${pair##*:}
    [ -f $Z/$run/checkpoints/latest ] || { echo "skip $name: $Z/$run not trained"; continue; }
    metrics=""
    if ls $Z/eval/${run}_vs_*.json >/dev/null 2>&1; then
      python recipes/zoo/card_metrics.py $Z/eval $run $name > $Z/eval/card_$run.json
      metrics="--metrics $Z/eval/card_$run.json"
    fi
    $T export --source $Z/$run --name GENA-LM/$name --out $ZOO/$name $common $metrics $(notes $name)
  done
  ;;
scan)
  # genome-wide meaning of the 1:1-trained promoter models: scan the held-out test region, both strands
  for name in promoter promoter_300; do
    python recipes/zoo/scan_precision.py --model GENA-LM/$name --fasta $FASTA \
        --tss $DATA/promoters/epdnew_hs006_GRCh37_chr20_tss.bed --region chr20:42,000,001-48,000,000 --step 500 \
        --out $Z/eval/scan_$name.json
  done
  ;;
*) echo "unknown stage $stage (prepare pretrain rmt finetune baselines evaluate export scan)"; exit 2 ;;
esac; done
