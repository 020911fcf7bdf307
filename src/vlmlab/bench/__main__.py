from vlmlab.bench.run import main

main()
