"""Reading labelled sets and inputs: image folders, gt.tsv/CSV/JSON labels, LMDB, MNIST, page sets."""
