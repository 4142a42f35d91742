from tfsonify.cli import main

raise SystemExit(main())
