"""vlmlab: controlled ablations of vision-language model design choices."""
