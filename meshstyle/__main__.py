from meshstyle.cli import main

raise SystemExit(main())
