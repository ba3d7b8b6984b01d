"""cmt: Cross Modal Transformer (Yan et al., ICCV 2023; arXiv 2301.01283). Not registered yet: see README.md."""
