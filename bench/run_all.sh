#!/usr/bin/env bash
# Every benchmark table of the README, in one run (about 30 minutes on a 2-core CPU). Run on a quiet machine.
#   bash bench/run_all.sh [DATA]      DATA: the shared data folder (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
FASTA=$DATA/genome/GRCh37_chr20.fa.gz
echo "## backbone inference (bert-base size, 512 tokens)"; python bench/bench_inference.py --repeats 7
echo; echo "## RMT long inputs"; python bench/bench_rmt.py --fasta $FASTA --tokenizer $DATA/gena_lm_official/tokenizer_t2t
echo; echo "## end to end: kipoi predict GENA-LM/promoter"; python bench/bench_end_to_end.py --fasta $FASTA
echo; echo "## training throughput"; python bench/bench_training.py
echo; echo "## corpus and tokenization"; python bench/bench_corpus.py --fasta $FASTA
echo; echo "## official GENA-LM heads at the official sizes (random weights, offline hub cache)"
python bench/bench_official.py --fasta $FASTA --tss-bed $DATA/promoters/epdnew_hs006_GRCh37_chr20_tss.bed \
    --splice-table $DATA/splice/spliceai_canonical_GRCh37_chr20.txt.gz
